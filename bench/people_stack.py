"""How long the people-facing commands take: `up` to ready and back, and `demo` end to end.

    .venv/bin/python bench/people_stack.py [--runs 3] [--full]

Each figure is the median of --runs wall-clock runs on this machine, with a baseline measured in the same
run: `epochstream --help` (interpreter start plus the CLI's imports, which every command pays). `--full`
also times the default `epochstream demo` (what `make demo` runs); without it, a 4-epoch demo.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from epochstream.broker import free_port

EPOCHSTREAM = [sys.executable, "-c", "from epochstream.cli import main; main()"]


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHSTREAM_")}
    env.update({"EPOCHSTREAM_DATA_DIR": str(data_dir), "EPOCHSTREAM_SPOOL_DIR": str(data_dir / "spool"),
                "COLUMNS": "160"})
    return env


def time_help() -> float:
    started = time.perf_counter()
    subprocess.run([*EPOCHSTREAM, "--help"], capture_output=True, check=True)
    return time.perf_counter() - started


def time_up(workers: int) -> tuple[float, float]:
    """(seconds from launch to `ready:`, seconds from SIGINT to exit) with the embedded broker."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "up.log"
        with open(log, "w") as out:
            started = time.perf_counter()
            proc = subprocess.Popen([*EPOCHSTREAM, "up", "--workers", str(workers), "--port", str(free_port())],
                                    env=env_for(Path(tmp) / "data"), stdout=out, stderr=subprocess.STDOUT)
        while "ready:" not in log.read_text():
            if proc.poll() is not None:
                raise SystemExit(f"up exited: {log.read_text()}")
            time.sleep(0.02)
        ready = time.perf_counter() - started
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        if proc.wait(timeout=120) != 0:
            raise SystemExit(f"up exited with {proc.returncode}: {log.read_text()}")
        return ready, time.perf_counter() - stopping


def time_demo(full: bool) -> float:
    args = [] if full else ["--epochs", "4", "--epoch-delay", "0"]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = subprocess.run([*EPOCHSTREAM, "demo", "--port", "0", *args], env=env_for(Path(tmp) / "data"),
                                capture_output=True, text=True, timeout=600)
        took = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"demo failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="time the default demo (what `make demo` runs)")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")
    print(f"command: {' '.join(sys.argv)}  (median of {args.runs} runs each)")
    baseline = statistics.median(time_help() for _ in range(args.runs))
    print(f"baseline  epochstream --help                       {baseline:6.2f} s")
    ups = [time_up(args.workers) for _ in range(args.runs)]
    print(f"up        launch -> ready ({args.workers} workers, embedded broker)  "
          f"{statistics.median(u[0] for u in ups):6.2f} s")
    print(f"up        Ctrl-C -> exited (with final drain)      {statistics.median(u[1] for u in ups):6.2f} s")
    label = "default (make demo)" if args.full else "--epochs 4 --epoch-delay 0"
    demo = statistics.median(time_demo(args.full) for _ in range(args.runs))
    print(f"demo      {label:<40} {demo:6.2f} s  (stack start, 4 trainings, summary, stop)")


if __name__ == "__main__":
    main()
