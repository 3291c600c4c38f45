"""What publishing costs training: per-call latency of `log_epoch`, and the wall time of a real loop.

    python bench/producer_overhead.py [--calls 5000] [--pairs 6] [--json out.json]

1. `log_epoch` latency (median, p99, max; microseconds) with 8 metrics per call:
   - broker up: a Valkey server this script starts (or EPOCHSTREAM_REDIS_URL);
   - broker down: a URL where nothing listens, so every event goes to the on-disk spool;
   - broker hanging: a listener that accepts and never answers, so each attempt waits out
     `publish_timeout_s` on the background thread (the wall-clock bound the test suite no longer asserts:
     `tests/producer/test_publisher.py` counts instead that the caller's thread never touches the broker);
   each "paced" (1 ms between calls: the background thread has time to deliver, as between real epochs)
   and "burst" (back to back: the background thread competes for the GIL with the caller; a worst case).
2. Training wall time: a small real PyTorch loop (MLP, synthetic data, AdamW) timed without publishing
   (it still computes its metrics by hand, as a loop that prints them would) and with epochstream
   (EpochAccumulator per batch, `log_epoch` per epoch, the system sampler running), interleaved
   A B B A ... in one process, torch on one thread; the median of the paired wall-time ratios, process
   CPU time, and the time spent inside the metric calls themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from epochstream.broker import ServerProcess, free_port  # noqa: E402
from epochstream.settings import Settings  # noqa: E402
from producer import EpochAccumulator, Publisher, start_run  # noqa: E402
from producer.run import default_publisher  # noqa: E402

METRICS = {"train/loss": 0.5, "val/loss": 0.6, "train/accuracy": 0.8, "val/accuracy": 0.75, "val/perplexity": 1.8,
           "learning_rate": 3e-4, "gradient_norm": 1.2, "epoch_duration": 12.5}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)]


def time_calls(settings: Settings, calls: int, pace_s: float) -> dict[str, float]:
    publisher = Publisher(settings)
    run = start_run("bench", publisher=publisher)
    for epoch in range(200):  # warm up: thread started, connection open, code paths hot
        run.log_epoch(epoch, {name: value / (epoch + 1) for name, value in METRICS.items()})
    publisher.flush(10)
    durations = []
    for epoch in range(calls):
        metrics = {name: value / (epoch + 1) for name, value in METRICS.items()}  # changing, as in training
        started = time.perf_counter_ns()
        run.log_epoch(epoch, metrics, samples=50_000)
        durations.append((time.perf_counter_ns() - started) / 1000)
        if pace_s:
            until = time.perf_counter() + pace_s
            while time.perf_counter() < until:
                time.sleep(pace_s / 4)
    run.finish()
    delivered = publisher.close(30)
    return {"median_us": statistics.median(durations), "p99_us": percentile(durations, 0.99),
            "max_us": max(durations), "calls": calls, "published": publisher.published,
            "spooled": publisher.spooled, "dropped": publisher.dropped, "all_delivered": delivered}


# -- the training loop ---------------------------------------------------------------------------------
def make_loaders(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(5, 32, generator=generator) * 0.25
    labels = torch.randint(0, 5, (6000,), generator=generator)
    x = centres[labels] + torch.randn(6000, 32, generator=generator)
    train = DataLoader(TensorDataset(x[:5000], labels[:5000]), batch_size=96, shuffle=True)
    val = DataLoader(TensorDataset(x[5000:], labels[5000:]), batch_size=96)
    return train, val


class HandTotals:
    """What a loop that prints its metrics computes anyway: the baseline does this instead of epochstream."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}

    def add_batch(self, name: str, mean: float, size: int) -> None:
        entry = self.sums.setdefault(name, [0.0, 0])
        entry[0] += mean * size
        entry[1] += size

    add_correct = add_batch  # same arithmetic: correct / total


def train(epochs: int, settings: Settings | None, seed: int) -> tuple[float, float, float, float]:
    """(wall s, process CPU s, s inside the metric calls, s of start_run + the `with` exit) of `epochs`
    epochs of a real loop; with `settings` it publishes through epochstream, else keeps the totals by hand."""
    torch.manual_seed(seed)
    train_loader, val_loader = make_loaders(seed)
    model = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 5))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    inside = 0.0
    clock = time.perf_counter
    started, cpu_started = clock(), time.process_time()
    run = start_run("bench-train", config={"seed": seed}, settings=settings) if settings else None
    fixed = clock() - started
    with run if run is not None else contextlib.nullcontext():
        for epoch in range(epochs):
            totals = EpochAccumulator() if run is not None else HandTotals()
            model.train()
            for xb, yb in train_loader:
                optimiser.zero_grad()
                logits = model(xb)
                loss = loss_fn(logits, yb)
                loss.backward()
                optimiser.step()
                value, right = loss.item(), (logits.argmax(1) == yb).sum().item()
                t0 = clock()
                totals.add_batch("train/loss", value, len(yb))
                totals.add_correct("train/accuracy", right, len(yb))
                inside += clock() - t0
            model.eval()
            with torch.no_grad():
                for xb, yb in val_loader:
                    logits = model(xb)
                    value, right = loss_fn(logits, yb).item(), (logits.argmax(1) == yb).sum().item()
                    t0 = clock()
                    totals.add_batch("val/loss", value, len(yb))
                    totals.add_correct("val/accuracy", right, len(yb))
                    inside += clock() - t0
            if run is not None:
                t0 = clock()
                run.log_epoch(epoch, totals.compute(), samples=totals.samples)
                inside += clock() - t0
        loop_done = clock()
    ended = clock()
    return ended - started, time.process_time() - cpu_started, inside, fixed + ended - loop_done


def thread_cpu_s(native_id: int) -> float:
    """CPU seconds of one thread: Linux's schedstat (nanoseconds), else psutil (clock ticks)."""
    try:
        return int(Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return next((t.user_time + t.system_time for t in psutil.Process().threads() if t.id == native_id),
                    float("nan"))


def time_training(settings: Settings, pairs: int, epochs: int) -> dict[str, object]:
    # One intra-op thread: on a shared machine, OpenMP threads spinning against other processes make wall
    # times swing by 10x for the same work, which would drown a 1 % effect. Both variants run the same way.
    torch.set_num_threads(1)
    train(1, None, 0)  # warm up torch
    runs: dict[bool, list[tuple[float, float, float, float]]] = {False: [], True: []}
    for pair in range(pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)  # A B, B A, ...
        for with_publishing in order:
            runs[with_publishing].append(train(epochs, settings if with_publishing else None, seed=pair))
    out: dict[str, object] = {"epochs_per_run": epochs, "pairs": pairs}
    for key, name in ((False, "plain"), (True, "published")):
        out[f"{name}_wall_s"] = [round(r[0], 4) for r in runs[key]]
        out[f"{name}_cpu_s"] = [round(r[1], 4) for r in runs[key]]
        out[f"median_{name}_wall_s"] = statistics.median(r[0] for r in runs[key])
        out[f"median_{name}_cpu_s"] = statistics.median(r[1] for r in runs[key])
        out[f"median_{name}_in_calls_ms"] = statistics.median(r[2] for r in runs[key]) * 1000
        out[f"median_{name}_start_and_end_ms"] = statistics.median(r[3] for r in runs[key]) * 1000
    # Paired: each publishing run against the plain run next to it, so slow drifts of the machine cancel.
    ratios = [b[0] / a[0] for a, b in zip(runs[False], runs[True], strict=True)]
    out["paired_wall_ratios"] = [round(r, 4) for r in ratios]
    out["slowdown_pct"] = (statistics.median(ratios) - 1) * 100
    out["cpu_slowdown_pct"] = (out["median_published_cpu_s"] / out["median_plain_cpu_s"] - 1) * 100
    # The fastest run of each: the one least disturbed by anything else on the machine.
    out["fastest_slowdown_pct"] = (min(r[0] for r in runs[True]) / min(r[0] for r in runs[False]) - 1) * 100
    out["in_calls_pct_of_wall"] = (out["median_published_in_calls_ms"] - out["median_plain_in_calls_ms"]) \
        / 10 / out["median_plain_wall_s"]
    # The publisher thread's own CPU time over all publishing runs (it lives on between them).
    thread = default_publisher(settings)._thread
    cpu = thread_cpu_s(thread.native_id) if thread is not None else float("nan")
    out["publisher_thread_cpu_ms"] = cpu * 1000
    out["publisher_thread_cpu_pct_of_wall"] = cpu / sum(r[0] for r in runs[True]) * 100
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="epochstream-bench-"))
    server = None
    url = os.environ.get("EPOCHSTREAM_REDIS_URL")
    if not url:
        server = ServerProcess(directory=scratch / "redis").start()
        url = server.url
    base = Settings(redis_url=url, namespace=f"bench-{os.getpid()}", spool_dir=scratch / "spool",
                    install_signal_handlers=False)
    down = base.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    silent = socket.socket()  # accepts (the kernel's backlog does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    hanging = base.model_copy(update={"redis_url": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
                                      "publish_timeout_s": 1.0})
    try:
        results: dict[str, object] = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Python {platform.python_version()}, torch {torch.__version__}",
            "log_epoch": {  # each with its own spool directory: no scenario delivers another's leftovers
                name: time_calls(where.model_copy(update={"spool_dir": scratch / name}), args.calls, pace)
                for name, where, pace in (("up_paced", base, 0.001), ("down_paced", down, 0.001),
                                          ("hang_paced", hanging, 0.001), ("up_burst", base, 0.0),
                                          ("down_burst", down, 0.0))
            },
            "training": time_training(base, args.pairs, args.epochs),
        }
    finally:
        silent.close()
        if server is not None:
            server.stop()

    print(f"machine: {results['machine']}")
    print(f"{'log_epoch':<14}{'median µs':>10}{'p99 µs':>9}{'max µs':>9}{'published':>10}{'spooled':>9}{'dropped':>8}")
    for name, r in results["log_epoch"].items():  # type: ignore[union-attr]
        print(f"{name:<14}{r['median_us']:>10.1f}{r['p99_us']:>9.1f}{r['max_us']:>9.0f}"
              f"{r['published']:>10}{r['spooled']:>9}{r['dropped']:>8}")
    t = results["training"]
    print(f"training, {t['epochs_per_run']} epochs a run, {t['pairs']} interleaved pairs:")  # type: ignore[index]
    for name, label in (("plain", "without publishing"), ("published", "with epochstream")):
        print(f"  {label:<20} wall median {t[f'median_{name}_wall_s']:.3f} s {t[f'{name}_wall_s']}  "  # type: ignore[index]
              f"CPU median {t[f'median_{name}_cpu_s']:.3f} s")  # type: ignore[index]
    print(f"  slowdown, wall: median of paired ratios {t['slowdown_pct']:+.2f} %, fastest runs "  # type: ignore[index]
          f"{t['fastest_slowdown_pct']:+.2f} %; CPU time (medians) {t['cpu_slowdown_pct']:+.2f} %")  # type: ignore[index]
    print(f"  time inside the metric calls per run: epochstream {t['median_published_in_calls_ms']:.2f} ms, "  # type: ignore[index]
          f"by hand {t['median_plain_in_calls_ms']:.2f} ms: the difference is "  # type: ignore[index]
          f"{t['in_calls_pct_of_wall']:.3f} % of the run's wall time")  # type: ignore[index]
    print(f"  once per run: start_run + the `with` exit (run_finished delivered) took "  # type: ignore[index]
          f"{t['median_published_start_and_end_ms']:.2f} ms (median)")  # type: ignore[index]
    print(f"  the publisher thread used {t['publisher_thread_cpu_ms']:.1f} ms of CPU over all publishing runs: "  # type: ignore[index]
          f"{t['publisher_thread_cpu_pct_of_wall']:.3f} % of their wall time")  # type: ignore[index]
    print(f"  load average during the run: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
