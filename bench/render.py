"""Render benchmark of the web page in headless Chromium: 1,000 runs listed, 5 runs of 100,000 steps overlaid.

    .venv/bin/python bench/render.py [--runs 1000] [--long 6] [--steps 100000] [--repeats 3]

Data, straight into the read model with the drain's own writer (as bench/api.py; no Redis): `--runs` runs in
all, `--long` of them with `--steps` steps (train/loss, learning_rate, gradient_norm at every step), 30
epochs of 6 metrics and 60 system samples with one GPU; the others 3 epochs each. Each round starts a fresh
API server (its caches cold) and one browser tab, loads each page from about:blank with the browser's HTTP
cache cleared, and measures:

- first meaningful paint, once right after the server started and once more (a new page) with it running:
  navigation start -> the frame after the page's first render of
  `/#runs=<5 long runs>&per=1000`: the table's first screenful of its 1,000 rows (the rest are appended
  right after that frame, and when every row is in is printed too), and every epoch, step and system chart
  of the 5 runs drawn (step curves come downsampled from the API's rollups, 500 points per metric and run);
- selection change: a tick on a sixth long run's box -> the frame after the redraw with 6 runs overlaid
  (its data fetched from the server, cold), and the untick back to 5;
- for scale: the smoothing slider moved on (5 EMAs over 100,000 steps each, cold) and moved again;
  the first paint again at the default page size (100 rows) with the server warm;
- baseline, in the same round: the same page against an empty read model (the page's own cost: scripts,
  one empty listing; server just started, then running), and Chromium's first contentful paint of a
  one-line HTML page.

Figures are the median of --repeats rounds, each round's value printed too; the load average of the host
(other processes on this shared machine) is printed before and after. On a busy host wall times mostly
measure waiting for a CPU, so the CPU time the browser and the API server used for the first paint and the
selection change is printed as well: page renderer / the rest of the browser (its main, GPU and network
processes and the playwright driver) / the API server, in ms.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import header, start_api  # noqa: E402

from epochstream.readmodel import ReadModelWriter  # noqa: E402
from schemas.epoch import EpochV2  # noqa: E402
from schemas.keys import partition_of  # noqa: E402
from schemas.run_finished import RunFinishedV2  # noqa: E402
from schemas.run_started import RunStartedV2  # noqa: E402
from schemas.step import StepV1  # noqa: E402
from schemas.system import GpuSample, SystemV2  # noqa: E402

PARTITIONS = 4
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}


class Builder:
    def __init__(self, data_dir: Path):
        self.writer = ReadModelWriter.open(data_dir)
        self.t0 = datetime.now(UTC) - timedelta(days=1)
        self.ids = iter(range(1, 10**12))
        self.pending: list = []

    def env(self, run_id: str, seq: int, offset_s: float) -> dict:
        return {"event_id": f"{run_id}:{seq}", "run_id": run_id, "seq": seq,
                "ts": self.t0 + timedelta(seconds=offset_s), "host": "bench", "pid": 1}

    def add(self, event) -> None:
        self.pending.append(event)
        if len(self.pending) >= 10_000:
            self.flush()

    def flush(self) -> None:
        by_partition: dict[int, list] = {}
        for ev in self.pending:
            by_partition.setdefault(partition_of(ev.run_id, PARTITIONS), []).append((f"{next(self.ids)}-0", ev,
                                                                                     self.t0))
        for partition, entries in by_partition.items():
            self.writer.apply(partition, entries, 0, self.t0)
        self.pending = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def build(data_dir: Path, runs: int, long: int, steps: int) -> list[str]:
    """`runs` runs in all: `long` of them long, the rest short."""
    b = Builder(data_dir)
    rng = random.Random(1)
    for i in range(runs - long):
        rid = f"short-{i:04d}"
        b.add(RunStartedV2(**b.env(rid, 1, i), project=f"proj-{i % 10}", name=rid, config={"lr": 0.1 / (1 + i % 5)}))
        for e in range(3):
            b.add(EpochV2(**b.env(rid, 2 + e, i + e), epoch=e, samples=100,
                          metrics={"train/loss": 1.0 / (e + 1), "val/loss": 1.1 / (e + 1) + i % 7 * 0.01}))
        b.add(RunFinishedV2(**b.env(rid, 5, i + 4), status="completed", exit_code=0, duration_s=4.0))
    ids = []
    for k in range(long):
        rid = f"long-{k}"
        ids.append(rid)
        start = runs + 10 * k  # newer than every short run: the table starts with them
        b.add(RunStartedV2(**b.env(rid, 1, start), project="long", name=f"long run {k}",
                           config={"lr": 10 ** -(2 + k % 3), "layers": 4 + 2 * (k % 2), "optimizer": "adam"}))
        seq = 2
        scale = 1 + 0.15 * k
        for s in range(steps):
            b.add(StepV1(**b.env(rid, seq, start + s * 1e-3), step=s, epoch=s * 30 // steps,
                         metrics={"train/loss": scale * 3 / math.sqrt(1 + s / 200) + rng.gauss(0, 0.1),
                                  "learning_rate": 1e-3 * (1 - s / steps) + 1e-6,
                                  "gradient_norm": abs(rng.gauss(1, 0.3))}))
            seq += 1
        for e in range(30):
            val = scale * (1.2 / (e + 1) + 0.3)
            b.add(EpochV2(**b.env(rid, seq, start + e), epoch=e, samples=1000,
                          metrics={"train/loss": scale * 2 / (e + 1), "val/loss": val, "val/accuracy": 0.5 + e / 70,
                                   "val/perplexity": math.exp(val), "learning_rate": 1e-3 * 0.9 ** e,
                                   "gradient_norm": 1 + e % 3}))
            seq += 1
        for i in range(60):
            b.add(SystemV2(**b.env(rid, seq, start + i), cpu_percent=50.0 + i % 9, rss_mb=2000.0 + i,
                           gpus=[GpuSample(index=0, mem_allocated_mb=30000.0 + 10 * i, mem_total_mb=81559.0,
                                           utilization_pct=80.0 + i % 15)]))
            seq += 1
        b.add(RunFinishedV2(**b.env(rid, seq, start + 100), status="completed", exit_code=0, duration_s=3600.0))
    b.close()
    return ids


PAINTED = "window.__epochstream && window.__epochstream.firstPaint !== null"
REDRAWN = """const t0 = performance.now();
    document.addEventListener("epochstream:rendered", () => requestAnimationFrame(() => setTimeout(() =>
        done(performance.now() - t0))), { once: true });"""
CHANGE = f"""box => new Promise(done => {{ {REDRAWN} document.querySelector(box).click(); }})"""
SMOOTH = f"""v => new Promise(done => {{ {REDRAWN}
    const e = document.getElementById("smoothing"); e.value = v; e.dispatchEvent(new Event("change")); }})"""


class CpuMeter:
    """CPU time of this process's descendants: the API server, and the browser (Chromium's processes and the
    playwright driver). Unlike wall time, hardly moved by what else runs on the host."""

    def __init__(self, server: int):
        self.server = server
        self.start = self._read()

    renderers: set[int] = set()  # Chromium's renderer processes (web pages), not its browser/GPU/network ones

    @classmethod
    def _read(cls) -> dict[int, float]:
        out = {}
        for proc in psutil.Process().children(recursive=True):
            try:
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
                if proc.pid not in cls.renderers and any(
                        a == "--type=renderer" for a in proc.cmdline()) and "--top-chrome-webui" not in proc.cmdline():
                    cls.renderers.add(proc.pid)
            except psutil.Error:
                pass
        return out

    def used_ms(self) -> tuple[float, float, float]:
        """(page renderers, the rest of the browser and the playwright driver, the API server): CPU ms since the
        meter was made."""
        now = self._read()
        delta = {pid: t - self.start.get(pid, 0.0) for pid, t in now.items()}
        server = delta.pop(self.server, 0.0)
        pages = sum(v for pid, v in delta.items() if pid in self.renderers)
        return pages * 1000, (sum(delta.values()) - pages) * 1000, server * 1000


class Tab:
    """One browser tab for a whole round. Each load starts from about:blank with the HTTP cache cleared (a first
    visit: every file and answer fetched), but in a tab that exists already: opening a window costs headless
    Chromium ~2 s of CPU of its own (its tab-strip UI), which no page load of a person's pays."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport=VIEWPORT)
        self.cdp = self.page.context.new_cdp_session(self.page)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto("about:blank")
        settle()

    def load(self, url: str) -> None:
        self.cdp.send("Network.clearBrowserCache")
        self.page.goto("about:blank")
        self.page.goto(url)

    def first_paint(self, url: str, check) -> float:
        self.load(url)
        self.page.wait_for_function(PAINTED, timeout=60_000)
        ms = self.page.evaluate("window.__epochstream.firstPaint")
        self.page.wait_for_function("window.__epochstream.firstDrawn !== null", timeout=60_000)  # every row in
        check(self.page)
        if self.errors:
            raise SystemExit(f"page errors: {self.errors}")
        return ms

    def close(self) -> None:
        self.page.close()


def settle(quiet_ms: float = 30, max_s: float = 10) -> None:
    """Wait until this process's descendants use (almost) no CPU: a new window's own work is over."""
    deadline = time.monotonic() + max_s
    last = sum(CpuMeter._read().values())
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = sum(CpuMeter._read().values())
        if (now - last) * 1000 < quiet_ms:
            return
        last = now


def round_(browser, data: Path, empty: Path, ids: list[str], runs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    tab = Tab(browser)
    page = tab.page
    tab.load("data:text/html,<p>one line</p>")
    page.wait_for_function("performance.getEntriesByType('paint').length > 0")
    out["baseline: a one-line HTML page, first contentful paint"] = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0].startTime")

    proc, base = start_api({"EPOCHSTREAM_DATA_DIR": str(empty), "EPOCHSTREAM_PARTITIONS": str(PARTITIONS)})
    try:
        for label in ("server just started", "server running"):
            meter = CpuMeter(proc.pid)
            ms = tab.first_paint(f"{base}/", lambda p: p.wait_for_selector("#no-runs:not([hidden])"))
            out[f"baseline: the page on an empty read model, {label}"] = ms
            out[f"  ... CPU: page renderer / rest of the browser / API server, empty, {label}"] = meter.used_ms()
    finally:
        proc.terminate()
        proc.wait(10)

    proc, base = start_api({"EPOCHSTREAM_DATA_DIR": str(data), "EPOCHSTREAM_PARTITIONS": str(PARTITIONS)})
    try:
        def drawn(p) -> None:
            rows = p.locator("#runs tbody tr").count()
            curves = p.evaluate("[...document.querySelectorAll('figure[data-kind=step] path.curve')].length")
            if rows != runs or curves != 3 * 5:
                raise SystemExit(f"page not fully drawn: {rows} rows, {curves} step curves")

        shown = f"{base}/#runs={','.join(ids[:5])}"
        for label in ("server just started", "server running"):
            meter = CpuMeter(proc.pid)
            ms = tab.first_paint(f"{shown}&per=1000", drawn)
            cpu = meter.used_ms()
            out[f"first meaningful paint ({runs} runs listed, 5 x 100k steps), {label}"] = ms
            out[f"  ... every one of the {runs} table rows in, {label}"] = page.evaluate(
                "window.__epochstream.firstDrawn")
            out[f"  ... CPU: page renderer / rest of the browser / API server, {label}"] = cpu
        extra = f"#runs tr[data-run-id='{ids[5]}'] input.pick"
        meter = CpuMeter(proc.pid)
        out["selection change: tick a 6th long run (its data new to the server)"] = page.evaluate(CHANGE, extra)
        out["  ... CPU: page renderer / rest of the browser / API server"] = meter.used_ms()
        if page.locator("figure[data-kind=step][data-metric='train/loss'] path.curve").count() != 6:
            raise SystemExit("the sixth run was not drawn")
        out["selection change: untick it again"] = page.evaluate(CHANGE, extra)
        out["(for scale) smoothing on: 5 EMAs over 100k steps, step columns read"] = page.evaluate(SMOOTH, "0.6")
        if page.locator("figure[data-kind=step] path.raw").count() != 15:
            raise SystemExit("the smoothed curves were not drawn")
        out["(for scale) smoothing weight changed, step columns cached"] = page.evaluate(SMOOTH, "0.8")
        out["(for scale) first meaningful paint at the default page size (100 rows)"] = tab.first_paint(
            shown, lambda p: None)
    finally:
        tab.close()
        proc.terminate()
        proc.wait(10)
    return out


def show(value: float | tuple) -> str:
    return "/".join(f"{v:.0f}" for v in value) if isinstance(value, tuple) else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--long", type=int, default=6, help="long runs: 5 shown first, one more ticked")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.long < 6:
        raise SystemExit("--long must be at least 6 (5 overlaid, one more for the selection change)")
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium: apt-get install -y chromium")
    header()
    with tempfile.TemporaryDirectory() as tmp:
        data, empty = Path(tmp) / "data", Path(tmp) / "empty"
        t = time.perf_counter()
        ids = build(data, args.runs, args.long, args.steps)
        ReadModelWriter.open(empty).close()
        print(f"data: {args.runs} runs, {args.long} of them of {args.steps:,} steps, written to the read model "
              f"in {time.perf_counter() - t:.0f} s")
        rounds = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            print(f"chromium {browser.version}, viewport {VIEWPORT['width']}x{VIEWPORT['height']}; "
                  f"load average now {os.getloadavg()[0]:.1f}")
            for r in range(args.repeats):
                rounds.append(round_(browser, data, empty, ids, args.runs))
                print(f"round {r + 1}: " + ", ".join(show(v) for v in rounds[-1].values()) + " ms")
            browser.close()
    print(f"\n{'figure (ms, median of ' + str(args.repeats) + ')':80} {'median':>7}  rounds")
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        if isinstance(values[0], tuple):  # CPU ms of the page renderer / the rest of the browser / the server
            median = tuple(statistics.median(v[i] for v in values) for i in range(len(values[0])))
            print(f"{name:80} {show(median):>7}  " + " ".join(show(v) for v in values))
        else:
            print(f"{name:80} {statistics.median(values):7.0f}  " + " ".join(f"{v:.0f}" for v in values))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")


if __name__ == "__main__":
    main()
