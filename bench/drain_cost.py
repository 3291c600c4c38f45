"""What one drain call costs per event by batch size: the fixed cost per call that small batches pay.

    .venv/bin/python bench/drain_cost.py [--sizes 20,100,1000] [--rounds 15] [--postgres ADMIN_URL]

Against its own Valkey server; one partition; each round XADDs one epoch (8 metrics) of each of N runs and
drains them with one in-process `workers.drain.drain` call, timed by `time.process_time` (robust to other
load). Spread load (many runs, an epoch now and then, spread over partitions) gives drains small batches;
the burst gives big ones. Printed per size: the median CPU per event over the rounds, and the implied fixed
cost per call, (cost(n) - cost(largest)) x n. Baseline of the same run: the largest size, where the fixed
cost is spread thinnest.

The garbage collector as a worker's drain process has it (`epochstream.collector`); `--gc both` (the default)
also measures each size with CPython's default collector settings, interleaved round by round with the
tuned ones, and prints the ratio: the baseline of that change, from the same run.

`--postgres postgresql://postgres@127.0.0.1/postgres`: the read model in PostgreSQL (a scratch database per
size, created and dropped through that URL). The drain's own CPU is then only the client's half; the
server's, the CPU of the backends that served the drains (each drain call has its own connection, so its
backend exits at the call's end and the postmaster reaps it: its CPU shows in the postmaster's children
times, read from /proc, which needs the server on this host), is printed beside it. Other sessions ending on
the same server meanwhile count too: run it on a quiet server.
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import os
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

from benchlib import header, scratch_database  # noqa: E402

from epochstream.broker import ServerProcess  # noqa: E402
from epochstream.collector import DRAIN_GEN0, tune_collector  # noqa: E402
from epochstream.settings import Settings  # noqa: E402
from schemas.codec import encode  # noqa: E402
from schemas.epoch import EpochV2  # noqa: E402
from schemas.keys import PAYLOAD_FIELD, Keys  # noqa: E402
from workers.drain import drain  # noqa: E402


@functools.cache
def postmaster_pid(admin_url: str) -> int:
    import psycopg

    with psycopg.connect(admin_url) as con:
        directory = Path(con.execute("SHOW data_directory").fetchone()[0])
    if os.access(directory, os.R_OK):
        return int((directory / "postmaster.pid").read_text().split()[0])
    return int(Path(f"/var/run/postgresql/{directory.parent.name}-{directory.name}.pid").read_text())


def postmaster_children_cpu(admin_url: str) -> float:
    """CPU seconds of the server's exited (reaped) backends so far: the postmaster's cutime + cstime."""
    fields = Path(f"/proc/{postmaster_pid(admin_url)}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime


DEFAULT_GC = gc.get_threshold()


def collector(tuned: bool) -> None:
    """The drain processes' collector settings (`epochstream.collector`), or CPython's defaults."""
    if tuned:
        tune_collector(DRAIN_GEN0)
    else:
        gc.unfreeze()
        gc.set_threshold(*DEFAULT_GC)


def cost_per_event(url: str, runs: int, rounds: int, admin_url: str | None = None,
                   tuned_gc: bool = True) -> tuple[float, float]:
    """(median client CPU per event, median PostgreSQL server CPU per event; 0 with SQLite)."""
    with scratch_database(admin_url) as read_model_url:
        return _cost_per_event(url, runs, rounds, read_model_url, admin_url, tuned_gc)


def _cost_per_event(url: str, runs: int, rounds: int, read_model_url: str,
                    admin_url: str | None, tuned_gc: bool) -> tuple[float, float]:
    data = Path(tempfile.mkdtemp(prefix="es-drain-cost-"))
    settings = Settings(redis_url=url, namespace=f"cost-{runs}-{time.monotonic_ns()}", data_dir=data / "data",
                        partitions=1, spool_dir=data / "spool", read_model_url=read_model_url)
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
    per_event, server_per_event = [], []
    collector(tuned_gc)
    for epoch in range(3, 3 + rounds):
        publish(epoch)
        server = postmaster_children_cpu(admin_url) if admin_url else 0.0
        started = time.process_time()
        stored = drain(client, settings, 0, max_seconds=30).stored
        per_event.append((time.process_time() - started) / max(stored, 1))
        if admin_url:
            time.sleep(0.3)  # the drain's backend has exited: let the postmaster reap it
            server_per_event.append((postmaster_children_cpu(admin_url) - server) / max(stored, 1))
    client.close()
    return statistics.median(per_event), statistics.median(server_per_event) if server_per_event else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20,100,1000", help="events per drained batch (runs, one epoch each)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--postgres", default=None, help="admin URL: the read model in PostgreSQL (scratch databases)")
    ap.add_argument("--gc", choices=("both", "tuned", "default"), default="both",
                    help="collector settings: the drain processes' (tuned), CPython's defaults, or both")
    ap.add_argument("--repeats", type=int, default=1, help="measurements per size and setting (median)")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    header()
    settings_measured = {"both": (True, False), "tuned": (True,), "default": (False,)}[args.gc]
    server = ServerProcess(directory=Path(tempfile.mkdtemp(prefix="es-drain-cost-valkey-"))).start()
    samples: dict[tuple[int, bool], list[tuple[float, float]]] = {}
    try:
        for _ in range(args.repeats):  # interleaved: a change in the host's speed hits both settings alike
            for n in sizes:
                for tuned in settings_measured:
                    samples.setdefault((n, tuned), []).append(cost_per_event(server.url, n, args.rounds,
                                                                             args.postgres, tuned))
    finally:
        server.stop()
    for tuned in settings_measured:
        name = "drain processes' collector (epochstream.collector)" if tuned else "CPython's default collector"
        print(f"-- {name}")
        costs = {n: statistics.median(c for c, _ in samples[(n, tuned)]) for n in sizes}
        servers = {n: statistics.median(s for _, s in samples[(n, tuned)]) for n in sizes}
        floor = costs[sizes[-1]]
        for n in sizes:
            fixed = (costs[n] - floor) * n
            server_cpu = f" (+ {servers[n] * 1e6:,.0f} us PostgreSQL server CPU)" if args.postgres else ""
            print(f"{n:>6} events per drain call: median {costs[n] * 1e6:,.0f} us CPU per event{server_cpu}"
                  + (f"; implied fixed cost per call {fixed * 1e3:.1f} ms" if n != sizes[-1] else " (baseline)"))
    if len(settings_measured) == 2:
        for n in sizes:
            tuned, default = (statistics.median(c for c, _ in samples[(n, t)]) for t in (True, False))
            print(f"{n:>6} events per drain call: tuned / default collector = {tuned / default:.2f}")


if __name__ == "__main__":
    main()
