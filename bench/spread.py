"""Spread-load benchmark: many concurrent runs, each sending an epoch now and then — the shape users have.

    .venv/bin/python bench/spread.py --runs 1000 [--seconds 120] [--publishers 8] [--workers 2] [--repeats 3]
    .venv/bin/python bench/spread.py --find 500,1000,2000,5000,10000   # the largest N that keeps up

`epochstream up` with --workers workers and its embedded broker; --runs simulated runs spread over at most
--publishers processes that use the real producer (`Publisher`, `Run.log_epoch`/`log_system`), each run
logging one epoch of 8 metrics per second and a system sample every 10 s, for --seconds. A prober in this
process long-polls `/runs/{id}/epochs?since=` of a sample of runs through the API. It prints:
- publish -> queryable latency p50/p99 over the whole run (log_epoch call -> the epoch in an API answer);
- the backlog at the end of the publishing window (entries not yet acknowledged) and how long the rest took;
- CPU used by the pipeline processes (`up` and its children: broker, workers, scheduler, API) in cores;
- the baseline of the same run: the same publishers against a bare server (XADD only, no workers).
"Keeps up" means: the backlog at the end is under one second of publishing and p99 under 2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import header  # noqa: E402

from epochstream.broker import free_port  # noqa: E402

EPOCHSTREAM = [sys.executable, "-c", "from epochstream.cli import main; main()"]
SAMPLED_PER_PUBLISHER = 4

PUBLISHER = r'''
import json, math, random, sys, time
from epochstream.settings import Settings
from producer import Publisher
from producer.run import Run
from schemas.run_started import RunStartedV2
index, runs, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
start_at, out = float(sys.argv[4]), sys.argv[5]
settings = Settings(system_interval_s=3600, install_signal_handlers=False)
publisher = Publisher(settings)
rng = random.Random(index)
# Runs are opened directly (not start_run): thousands of simulated trainings share one process here, and
# each start_run would start its own system sampler thread.
opened = []
for r in range(runs):
    run = Run(publisher, f"spread-{index}-{r}", "spread", settings)
    run._emit(RunStartedV2, project="spread", name=f"p{index}-r{r}", config={"lr": 10 ** rng.uniform(-4, -2)},
              heartbeat_s=10.0)
    opened.append(run)
sampled = {run.run_id for run in opened[:%(sampled)d]}
published = {}
while time.time() < start_at:
    time.sleep(0.01)
ticks = 10  # each second's epochs go out in ten slices, as trainings finish epochs at their own moments
for second in range(int(seconds)):
    for tick in range(ticks):
        due = start_at + second + tick / ticks
        time.sleep(max(0.0, due - time.time()))
        for r in range(tick, runs, ticks):
            run = opened[r]
            base = 2.0 / math.sqrt(second + 1)
            noise = rng.random
            run.log_epoch(second, {"train/loss": base + 0.01 * noise(), "val/loss": base * 1.1 + 0.01 * noise(),
                                   "train/accuracy": 1 - base / 3, "val/accuracy": 1 - base / 2.5 + 0.01 * noise(),
                                   "val/perplexity": 2.7 + noise(), "learning_rate": 1e-3 * 0.99 ** second,
                                   "gradient_norm": 1.0 + noise(), "epoch_duration": 1.0 + noise()}, samples=1000)
            if run.run_id in sampled:
                published[f"{run.run_id}:{second}"] = time.time()
            if (second + r) %% 10 == 0:
                run.log_system(cpu_percent=50.0, rss_mb=1000.0)
for run in opened:
    run.finish("completed", exit_code=0)
ok = publisher.flush(60)
json.dump({"published": published, "flushed": ok, "dropped": publisher.dropped}, open(out, "w"))
'''


def env_for(data_dir: Path, redis_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHSTREAM_")}
    env.update({"EPOCHSTREAM_DATA_DIR": str(data_dir), "EPOCHSTREAM_SPOOL_DIR": str(data_dir / "spool"),
                "EPOCHSTREAM_PUBLISH_QUEUE_SIZE": "1000000"})
    if redis_url:
        env["EPOCHSTREAM_REDIS_URL"] = redis_url
    return env


def start_up(data_dir: Path, workers: int) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    with open(data_dir.parent / "up.log", "w") as log:
        proc = subprocess.Popen([*EPOCHSTREAM, "up", "--workers", str(workers), "--port", str(port), "--interval",
                                 "0.2"], env=env_for(data_dir), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if "ready:" in (data_dir.parent / "up.log").read_text():
            broker = json.loads((data_dir / "broker.json").read_text())["url"]
            return proc, f"http://127.0.0.1:{port}", broker
        if proc.poll() is not None:
            raise SystemExit(f"up exited: {(data_dir.parent / 'up.log').read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit("up did not become ready")


def stop_up(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()


def _role(proc: psutil.Process) -> str:
    line = " ".join(proc.cmdline())
    for role in ("api", "scheduler", "worker"):
        if f" {role}" in line and "epochstream" in line:
            return role
    return "broker" if "valkey" in line or "redis-server" in line else "supervisor"


def pipeline_cpu(proc: subprocess.Popen) -> dict[str, float]:
    """CPU seconds so far of `up` and its children, by role."""
    out: dict[str, float] = {}
    try:
        parent = psutil.Process(proc.pid)
        for p in [parent, *parent.children(recursive=True)]:
            try:
                t = p.cpu_times()  # children_*: RQ's work horses, forked per job and waited for by their worker
                role = _role(p) if p.pid != parent.pid else "supervisor"
                out[role] = out.get(role, 0.0) + t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return out


def procs_cpu(procs: list[subprocess.Popen]) -> float:
    total = 0.0
    for proc in procs:
        try:
            t = psutil.Process(proc.pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def backlog(url: str) -> int:
    client = redis.Redis.from_url(url)
    left = 0
    for key in client.scan_iter(match="epochstream:events:*"):
        for group in client.xinfo_groups(key):
            left += (group.get("lag") or 0) + group["pending"]
    client.close()
    return left


class Prober:
    """Long polls each sampled run's epochs and notes when every epoch first appears in an answer."""

    def __init__(self, base: str, run_ids: list[str]):
        self.base, self.run_ids = base, run_ids
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.errors = 0
        self.threads = [threading.Thread(target=self._poll, args=(r,), daemon=True) for r in run_ids]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _poll(self, run_id: str) -> None:
        since = -1
        with httpx.Client(base_url=self.base, timeout=40) as client:
            while not self.stop.is_set():
                try:
                    resp = client.get(f"/runs/{run_id}/epochs", params={"since": since, "wait": 5})
                except httpx.HTTPError:
                    self.errors += 1
                    time.sleep(0.2)
                    continue
                now = time.time()
                if resp.status_code == 404:
                    time.sleep(0.05)  # run_started not drained yet
                    continue
                if resp.status_code != 200:
                    self.errors += 1
                    continue
                for epoch in resp.json()["epochs"]:
                    self.seen.setdefault(f"{run_id}:{epoch['epoch']}", now)
                    since = max(since, epoch["epoch"])

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)


def publish(data_dir: Path, url: str | None, runs: int, publishers: int, seconds: float) -> tuple[list, float]:
    count = min(publishers, runs)
    per = [runs // count + (1 if i < runs % count else 0) for i in range(count)]
    start_at = time.time() + 5 + runs / 2000  # every process has opened its runs by then
    outs = [data_dir.parent / f"pub-{i}.json" for i in range(count)]
    code = PUBLISHER % {"sampled": SAMPLED_PER_PUBLISHER}
    env = env_for(data_dir, url)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i), str(n), str(seconds), str(start_at), str(out)],
                              env=env, cwd=ROOT) for i, (n, out) in enumerate(zip(per, outs, strict=True))]
    return [procs, outs], start_at


def host_busy() -> float:
    """CPU seconds the whole host spent busy (every process, ours or not) since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def one(runs: int, seconds: float, publishers: int, workers: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="es-spread-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    proc, base, broker = start_up(data_dir, workers)
    try:
        (procs, outs), start_at = publish(data_dir, broker, runs, publishers, seconds)
        sampled = [f"spread-{i}-{r}" for i in range(len(outs)) for r in range(min(SAMPLED_PER_PUBLISHER, runs))]
        prober = Prober(base, sampled)
        prober.start()
        time.sleep(max(0.0, start_at - time.time()))
        cpu0, pub0, host0, wall0 = pipeline_cpu(proc), procs_cpu(procs), host_busy(), time.monotonic()
        time.sleep(seconds)
        left = backlog(broker)
        cpu1, pub1, host1, wall1 = pipeline_cpu(proc), procs_cpu(procs), host_busy(), time.monotonic()
        for p in procs:
            p.wait(timeout=600)
        drained_at = time.monotonic()
        while backlog(broker) and time.monotonic() - drained_at < 600:
            time.sleep(0.2)
        rest = time.monotonic() - drained_at
        time.sleep(2)
        prober.close()
        published: dict[str, float] = {}
        flushed, dropped = True, 0
        for out in outs:
            got = json.loads(out.read_text())
            published.update(got["published"])
            flushed, dropped = flushed and got["flushed"], dropped + got["dropped"]
        lat = sorted(prober.seen[k] - t for k, t in published.items() if k in prober.seen)
        missing = sum(1 for k in published if k not in prober.seen)
    finally:
        stop_up(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"p50": lat[len(lat) // 2] if lat else math.nan, "p99": lat[int(len(lat) * 0.99)] if lat else math.nan,
            "backlog": left, "rest_s": rest, "cores": (sum(cpu1.values()) - sum(cpu0.values())) / (wall1 - wall0),
            "roles": {k: (v - cpu0.get(k, 0.0)) / (wall1 - wall0) for k, v in cpu1.items()}, "missing": missing,
            "publisher_cores": (pub1 - pub0) / (wall1 - wall0), "host_cores": (host1 - host0) / (wall1 - wall0),
            "flushed": flushed, "dropped": dropped, "probe_errors": prober.errors, "samples": len(lat)}


def baseline(runs: int, seconds: float, publishers: int) -> float:
    """Events/s the same publishers put into a bare embedded server (no workers): what XADD alone takes."""
    from epochstream.broker import ServerProcess

    tmp = Path(tempfile.mkdtemp(prefix="es-spread-base-"))
    (tmp / "data").mkdir()
    server = ServerProcess(directory=tmp / "valkey").start()
    try:
        (procs, _), start_at = publish(tmp / "data", server.url, runs, publishers, seconds)
        for p in procs:
            p.wait(timeout=600)
        client = redis.Redis.from_url(server.url)
        total = sum(client.xlen(k) for k in client.scan_iter(match="epochstream:events:*"))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return total / seconds


def median_run(results: list[dict]) -> dict:
    return sorted(results, key=lambda r: r["p99"])[len(results) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--publishers", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--find", default="", help="comma-separated run counts: one measurement each, in order")
    args = ap.parse_args()
    header()
    counts = [int(x) for x in args.find.split(",") if x] or [args.runs]
    for runs in counts:
        repeats = 1 if args.find else args.repeats
        base = statistics.median(baseline(runs, min(args.seconds, 30), args.publishers) for _ in range(repeats))
        results = [one(runs, args.seconds, args.publishers, args.workers) for _ in range(repeats)]
        med = {k: statistics.median(r[k] for r in results) for k in ("p50", "p99", "backlog", "rest_s", "cores",
                                                                  "publisher_cores", "host_cores")}
        keeps_up = med["backlog"] < runs * 1.1 and med["p99"] < 2.0
        print(f"N={runs:,} runs (~{runs * 1.1:,.0f} events/s) for {args.seconds:.0f} s, {args.workers} workers: "
              f"publish->queryable p50 {med['p50']:.2f} s, p99 {med['p99']:.2f} s; backlog at the end "
              f"{med['backlog']:,.0f} events, drained {med['rest_s']:.1f} s after; pipeline CPU {med['cores']:.2f} "
              f"cores ({med['cores'] / (runs * 1.1) * 1e6:.0f} us/event), publishers {med['publisher_cores']:.2f} "
              f"cores, whole host busy {med['host_cores']:.2f} of {psutil.cpu_count()} cores; "
              f"{'keeps up' if keeps_up else 'FALLS BEHIND'} | pipeline cores by role (median run): "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(median_run(results)["roles"].items()))
              + " | baseline (XADD only, same publishers): "
              f"{base:,.0f} events/s | per run: "
              + "; ".join(f"p99 {r['p99']:.2f} s, backlog {r['backlog']}, samples {r['samples']}, missing "
                          f"{r['missing']}, flushed {r['flushed']}, dropped {r['dropped']}" for r in results))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
