"""What a partition's turn costs a worker: a work horse forked for it, or a turn taken in a running horse.

    .venv/bin/python bench/turn_cost.py [--rounds 7] [--events 5]

One real `epochstream worker` process against its own Valkey server, 8 partitions. Each round publishes
--events epochs to each partition, then:
- "a job per turn" (how every turn ran before `workers.turns`): one drain job queued at a time, so rq forks a
  work horse for each partition's turn;
- "turns in one horse": the 8 drain jobs queued at once, so the first job's horse takes the other 7 turns
  off the queue (`workers.turns`).
CPU is the worker's and its reaped work horses' (user + system, from /proc through psutil), divided by the
turns; the median over the rounds is printed. Baseline of the same run: a no-op rq job (`os.getpid`) through
the same worker, what a fork and rq's bookkeeping cost with no drain in it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import header  # noqa: E402

from epochstream.broker import ServerProcess  # noqa: E402
from epochstream.settings import Settings, settings_env  # noqa: E402
from schemas.codec import encode  # noqa: E402
from schemas.epoch import EpochV2  # noqa: E402
from schemas.keys import PAYLOAD_FIELD, Keys, partition_of  # noqa: E402
from workers.scheduling import drain_queue, enqueue_drain  # noqa: E402

PARTITIONS = 8


def worker_cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def wait_done(jobs, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    for job in jobs:
        while job.get_status(refresh=True) not in ("finished", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job.id} did not finish in {timeout_s}s")
            time.sleep(0.01)
    time.sleep(0.3)  # the horse has exited: let its worker reap it, so its CPU shows in the children times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--events", type=int, default=5, help="epochs per partition per round")
    args = ap.parse_args()
    header()
    server = ServerProcess(directory=Path(tempfile.mkdtemp(prefix="es-turn-cost-valkey-"))).start()
    data = Path(tempfile.mkdtemp(prefix="es-turn-cost-"))
    settings = Settings(redis_url=server.url, namespace=f"turns-{time.monotonic_ns()}", data_dir=data / "data",
                        partitions=PARTITIONS, spool_dir=data / "spool")
    client = redis.Redis.from_url(server.url)
    keys = Keys(settings.namespace, PARTITIONS)
    run_of: dict[int, list[str]] = {}
    i = 0
    while min((len(v) for v in run_of.values()), default=0) < args.events or len(run_of) < PARTITIONS:
        run_of.setdefault(partition_of(f"r{i}", PARTITIONS), []).append(f"r{i}")
        i += 1
    seq = {"n": 0}

    def publish() -> None:
        seq["n"] += 1
        pipe = client.pipeline(transaction=False)
        for partition in range(PARTITIONS):
            for run_id in run_of[partition][:args.events]:
                event = EpochV2(event_id=f"{run_id}:{seq['n']}", run_id=run_id, seq=seq["n"], ts=datetime.now(UTC),
                                epoch=seq["n"], metrics={"train/loss": 1.0 / seq["n"], "val/loss": 2.0 / seq["n"]})
                pipe.xadd(keys.stream(partition), {PAYLOAD_FIELD: encode(event)})
        pipe.execute()

    worker = subprocess.Popen([sys.executable, "-c", "from epochstream.cli import main; main()", "worker",
                               "--interval", "3600"], env=settings_env(settings), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue = drain_queue(client, settings)
    try:
        wait_done([queue.enqueue("os.getpid")], timeout_s=120)  # the worker is up
        noop, forked, in_horse = [], [], []
        for round_ in range(args.rounds + 1):  # round 0 warms: the runs exist, their files are made
            before = worker_cpu(worker.pid)
            wait_done([queue.enqueue("os.getpid") for _ in range(PARTITIONS)])
            middle = worker_cpu(worker.pid)
            publish()
            for partition in range(PARTITIONS):
                wait_done([enqueue_drain(client, settings, server.url, partition)])
            after_forked = worker_cpu(worker.pid)
            publish()
            jobs = [enqueue_drain(client, settings, server.url, p) for p in range(PARTITIONS)]
            wait_done([jobs[0]])
            after = worker_cpu(worker.pid)
            if len(queue) or any(client.exists(keys.drain_lock(p)) for p in range(PARTITIONS)):
                raise RuntimeError("turns left a drain queued or a lock held")
            if round_:
                noop.append((middle - before) / PARTITIONS)
                forked.append((after_forked - middle) / PARTITIONS)
                in_horse.append((after - after_forked) / PARTITIONS)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        client.close()
        server.stop()
    base = statistics.median(noop)
    print(f"{args.events} epochs per partition per turn, {PARTITIONS} partitions, median of {args.rounds} rounds")
    print(f"baseline: a no-op rq job (fork + rq's bookkeeping): {base * 1e3:.1f} ms CPU")
    for label, values in (("a job per turn (a horse forked per turn)", forked),
                          ("turns in one horse (workers.turns)", in_horse)):
        med = statistics.median(values)
        print(f"{label}: {med * 1e3:.1f} ms CPU per turn ({med / base:.2f}x the no-op job; "
              f"rounds {', '.join(f'{v * 1e3:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
