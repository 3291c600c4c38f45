"""The maintenance lock: one `compact` or `rebuild` at a time on a data directory.

An advisory `fcntl.flock` on `<data_dir>/maintenance.lock`. Drains never take it (they only add new
segment files, which both maintenance jobs tolerate); two compactions would merge the same parts, and a
compaction deleting parts under a rebuild's replay would fail it, so those exclude each other. The kernel
drops the lock when its holder dies, even by SIGKILL: a crashed job never leaves the directory locked,
and the next holder cleans up what the crashed one left. (It is a lock between processes on one host, or
on a shared filesystem that honours flock; the drains' Redis locks are another thing: `workers.drain`.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from epochstream.errors import TransientError
from epochstream.layout import DataLayout

POLL_S = 0.1


class MaintenanceBusy(TransientError):
    """Another `compact` or `rebuild` holds the data directory's maintenance lock."""


def holder(layout: DataLayout) -> str:
    """Who holds (or last held) the lock, in words, from what the holder wrote into the file."""
    try:
        info = json.loads(layout.maintenance_lock.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    return f"`{info.get('what', '?')}` (pid {info.get('pid', '?')}, since {info.get('since', '?')})"


@contextlib.contextmanager
def maintenance_lock(layout: DataLayout, what: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock for `what` ("compact", "rebuild"); wait up to `wait_s` for it, else MaintenanceBusy."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.maintenance_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MaintenanceBusy(
                        f"{holder(layout)} is maintaining {layout.root} ({layout.maintenance_lock} is locked); "
                        f"{what} did nothing. Retry when it is done, or pass --wait SECONDS to queue behind it"
                    ) from None
                time.sleep(POLL_S)
        info = {"what": what, "pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
