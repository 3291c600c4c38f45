"""Benchmark the query API over real HTTP: a uvicorn process, httpx clients with several connections.

Data: 10,000 runs (each run_started, 3 epochs, run_finished) plus one 1,000-epoch run, projected by the
workers' own projection functions (the drain path minus Redis, to build 10,000 runs in seconds).
Prints p50/p99 latency of GET /runs/{id}/epochs (1,000 epochs), /runs/{id}, /runs?limit=50, and the
rate of conditional polls answered 304; /healthz is the baseline (the HTTP stack with no data work).
Each figure is the median over --repeats rounds.

    .venv/bin/python bench/api.py [--runs 10000] [--requests 2000] [--concurrency 8] [--repeats 3]
        [--postgres postgresql://postgres@127.0.0.1/postgres]   # the read model in a scratch PostgreSQL database

Latency is measured with one connection, one request at a time, twice: with httpx (what a Python polling
client sees, its own overhead included) and with bench/httpload.py, a minimal keep-alive client (closer to
the server's own time). The rate uses httpload.py with several connections: on a 2-CPU machine httpx
would spend more CPU per request than the server and measure itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from epochstream.readmodel import ReadModelWriter  # noqa: E402
from schemas.epoch import EpochV2  # noqa: E402
from schemas.keys import partition_of  # noqa: E402
from schemas.run_finished import RunFinishedV2  # noqa: E402
from schemas.run_started import RunStartedV2  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import httpload  # noqa: E402
from benchlib import header, pct, scratch_database, start_api  # noqa: E402

PARTITIONS = 8


def _events(run_id: str, epochs: int, t0: datetime) -> list:
    env = lambda seq: {"event_id": f"{run_id}:{seq}", "run_id": run_id, "seq": seq,  # noqa: E731
                       "ts": t0 + timedelta(seconds=seq), "host": "bench", "pid": 1}
    out = [RunStartedV2(**env(1), project=f"proj-{hash(run_id) % 20}", name=run_id, config={"lr": 0.1})]
    for e in range(epochs):
        out.append(EpochV2(**env(2 + e), epoch=e, samples=100,
                           metrics={"train/loss": 1.0 / (e + 1), "val/loss": 1.2 / (e + 1) + 0.001 * e,
                                    "val/accuracy": 0.5 + e / (2 * epochs), "learning_rate": 1e-3}))
    out.append(RunFinishedV2(**env(2 + epochs), status="completed", exit_code=0, duration_s=float(epochs)))
    return out


def build_data(root: Path, runs: int, read_model_url: str = "") -> str:
    """`runs` short runs and one of 1,000 epochs, straight into the read model (the drain's own writer)."""
    writer = ReadModelWriter.open(root, url=read_model_url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    long_run = "bench-long-run"
    counter = iter(range(1, 10**9))

    def apply(events: list) -> None:
        by_partition: dict[int, list] = {}
        for ev in events:
            by_partition.setdefault(partition_of(ev.run_id, PARTITIONS), []).append((f"{next(counter)}-0", ev, t0))
        for partition, entries in by_partition.items():
            writer.apply(partition, entries, 0, t0)

    batch: list = []
    for i in range(runs):
        batch += _events(f"bench-{i:05d}", 3, t0 + timedelta(minutes=i))
        if len(batch) >= 5000 or i == runs - 1:
            apply(batch)
            batch = []
    apply(_events(long_run, 1000, t0))
    writer.close()
    return long_run


def start_server(data_dir: Path, read_model_url: str = "") -> tuple[subprocess.Popen, str]:
    return start_api({"EPOCHSTREAM_DATA_DIR": str(data_dir), "EPOCHSTREAM_PARTITIONS": str(PARTITIONS),
                      "EPOCHSTREAM_READ_MODEL_URL": read_model_url})


def httpx_latencies(base: str, path: str, requests: int, headers: dict | None, expect: int) -> list[float]:
    """Milliseconds per GET, one keep-alive connection, one request at a time: what a polling client sees."""
    out: list[float] = []
    with httpx.Client(base_url=base, headers=headers or {}) as client:
        for i in range(requests + 20):
            t = time.perf_counter()
            resp = client.get(path)
            if i >= 20:  # the first ones warm the connection and the server's caches
                out.append((time.perf_counter() - t) * 1000)
            if resp.status_code != expect:
                raise SystemExit(f"{path}: expected {expect}, got {resp.status_code}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default=None, help="admin URL: the read model in a scratch PostgreSQL database")
    args = parser.parse_args()
    header()
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.postgres) as read_model_url:
        data = Path(tmp) / "data"
        t = time.perf_counter()
        long_run = build_data(data, args.runs, read_model_url)
        elapsed = time.perf_counter() - t
        print(f"data: {args.runs} runs + 1 run of 1000 epochs, written to the read model in {elapsed:.1f}s")
        proc, base = start_server(data, read_model_url)
        try:
            etag = httpx.get(f"{base}/runs/{long_run}/epochs").headers["etag"]
            cases = [
                ("baseline GET /healthz (no data read)", "/healthz", None, 200),
                ("GET /runs/{id}/epochs (1000 epochs)", f"/runs/{long_run}/epochs", None, 200),
                ("GET /runs/{id}", f"/runs/bench-{args.runs // 2:05d}", None, 200),
                ("GET /runs?limit=50 (10k runs)", "/runs?limit=50", None, 200),
                ("conditional GET /runs/{id}/epochs -> 304", f"/runs/{long_run}/epochs", {"If-None-Match": etag}, 304),
            ]
            print(f"httpx: {args.requests} sequential GETs on 1 connection; raw: bench/httpload.py, 1 connection "
                  f"(latency) and {args.concurrency} connections (req/s); median of {args.repeats} rounds")
            print(f"{'endpoint':42} {'httpx p50':>9} {'httpx p99':>9} {'raw p50':>8} {'raw p99':>8} {'req/s':>7}")
            for name, path, headers, expect in cases:
                hx, raw, rates = [], [], []
                for _ in range(args.repeats):
                    hx.append(httpx_latencies(base, path, args.requests, headers, expect))
                    raw.append(asyncio.run(httpload.run(base + path, args.requests, 1, headers, expect))[0])
                    rates.append(asyncio.run(httpload.run(base + path, args.requests * 2, args.concurrency, headers,
                                                          expect))[1])
                figures = [statistics.median(pct(x, q) for x in runs) for runs in (hx, raw) for q in (0.5, 0.99)]
                print(f"{name:42} " + " ".join(f"{f:{w}.2f}" for f, w in zip(figures, (9, 9, 8, 8), strict=True))
                      + f" {statistics.median(rates):7.0f}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
