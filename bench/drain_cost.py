"""What one drain call costs per event by batch size: the fixed cost per call that small batches pay.

    .venv/bin/python bench/drain_cost.py [--sizes 20,100,1000] [--rounds 15]

Against its own Valkey server; one partition; each round XADDs one epoch (8 metrics) of each of N runs and
drains them with one in-process `workers.drain.drain` call, timed by `time.process_time` (robust to other
load). Spread load (many runs, an epoch now and then, spread over partitions) gives drains small batches;
the burst gives big ones. Printed per size: the median CPU per event over the rounds, and the implied fixed
cost per call, (cost(n) - cost(largest)) x n. Baseline of the same run: the largest size, where the fixed
cost is spread thinnest.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import header  # noqa: E402

from epochstream.broker import ServerProcess  # noqa: E402
from epochstream.settings import Settings  # noqa: E402
from schemas.codec import encode  # noqa: E402
from schemas.epoch import EpochV2  # noqa: E402
from schemas.keys import PAYLOAD_FIELD, Keys  # noqa: E402
from workers.drain import drain  # noqa: E402


def cost_per_event(url: str, runs: int, rounds: int) -> float:
    data = Path(tempfile.mkdtemp(prefix="es-drain-cost-"))
    settings = Settings(redis_url=url, namespace=f"cost-{runs}-{time.monotonic_ns()}", data_dir=data / "data",
                        partitions=1, spool_dir=data / "spool")
    client = redis.Redis.from_url(url)
    stream = Keys(settings.namespace, 1).stream(0)
    rng = random.Random(runs)

    def publish(epoch: int) -> None:
        pipe = client.pipeline(transaction=False)
        now = datetime.now(UTC)
        for r in range(runs):
            metrics = {"train/loss": 2 * math.exp(-epoch / 20) + rng.random() * 0.05,
                       "val/loss": 2 * math.exp(-epoch / 25) + rng.random() * 0.05, "train/accuracy": 0.5,
                       "val/accuracy": 0.4 + rng.random() * 0.1, "learning_rate": 1e-3,
                       "gradient_norm": rng.random(), "epoch_duration": 1.0, "val/perplexity": 3.0}
            event = EpochV2(event_id=f"run{r}:{epoch + 1}", run_id=f"run{r}", seq=epoch + 1, ts=now, epoch=epoch,
                            metrics=metrics)
            pipe.xadd(stream, {PAYLOAD_FIELD: encode(event)})
        pipe.execute()

    for epoch in range(3):  # warm: the runs exist, their fold state is stored
        publish(epoch)
        drain(client, settings, 0, max_seconds=30)
    per_event = []
    for epoch in range(3, 3 + rounds):
        publish(epoch)
        started = time.process_time()
        stored = drain(client, settings, 0, max_seconds=30).stored
        per_event.append((time.process_time() - started) / max(stored, 1))
    client.close()
    return statistics.median(per_event)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20,100,1000", help="events per drained batch (runs, one epoch each)")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    header()
    server = ServerProcess(directory=Path(tempfile.mkdtemp(prefix="es-drain-cost-valkey-"))).start()
    try:
        costs = {n: cost_per_event(server.url, n, args.rounds) for n in sizes}
    finally:
        server.stop()
    floor = costs[sizes[-1]]
    for n in sizes:
        fixed = (costs[n] - floor) * n
        print(f"{n:>6} events per drain call: median {costs[n] * 1e6:,.0f} us CPU per event"
              + (f"; implied fixed cost per call {fixed * 1e3:.1f} ms" if n != sizes[-1] else " (baseline)"))


if __name__ == "__main__":
    main()
