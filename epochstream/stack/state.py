"""Who owns a data directory: an exclusive `flock` on <data_dir>/stack.lock, held for the stack's life
(the kernel releases it when the holder dies: no stale pid files), and what the owner announced in
<data_dir>/stack.json (pid, API and broker URLs)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO, Any

from epochstream.atomic import atomic_write_text
from epochstream.stack.errors import StackAlreadyRunning, StackFailed

LOCK_FILE = "stack.lock"
STATE_FILE = "stack.json"


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """What a running stack on this data directory announced (pid, API and broker URLs), or None."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def running_stack(data_dir: Path) -> dict[str, Any] | None:
    """The state of the stack that holds this data directory's lock now, or None when none does."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_state(data_dir) or {"pid": None}
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def own_data_dir(data_dir: Path) -> IO[str]:
    """Take the data directory's lock (the returned file holds it until `release_data_dir`)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fh = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held (and locked) for the stack's life
    except OSError as exc:
        raise StackFailed(f"cannot use {data_dir} as the data directory: {exc.strerror or exc}; "
                          f"pass --data-dir (or set EPOCHSTREAM_DATA_DIR) to a writable directory") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        state = read_state(data_dir) or {}
        where = f" (pid {state.get('pid')}, API {state.get('api_url')})" if state else ""
        raise StackAlreadyRunning(
            f"an epochstream stack is already running on {data_dir}{where}: use it, or stop it with "
            f"Ctrl-C in its terminal before starting another"
        ) from None
    return fh


def write_state(data_dir: Path, *, api_url: str | None, broker_url: str | None, workers: int) -> None:
    state = {"pid": os.getpid(), "api_url": api_url, "broker_url": broker_url, "workers": workers,
             "started_at": time.time()}
    # broker_url may be EPOCHSTREAM_REDIS_URL with its password: for this user only
    atomic_write_text(data_dir / STATE_FILE, json.dumps(state), fsync=False, mode=0o600)


def release_data_dir(data_dir: Path, fh: IO[str]) -> None:
    """Retract the announcement and let the lock go."""
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()
