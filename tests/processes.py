"""Stopping the long-lived processes a test started (workers, schedulers), whatever state they are in."""

from __future__ import annotations

import subprocess
import time


def stop_processes(processes: list[subprocess.Popen], grace_s: float = 30) -> None:
    """SIGTERM (a warm shutdown: running drains finish), then SIGKILL whatever is left after `grace_s`."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace_s
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
