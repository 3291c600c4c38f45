"""Owners and their locks: an owner whose lock can be taken is dead, and its segments are adopted.

The lock is what keeps two live processes from replaying the same segment (delivering a record twice is
harmless anyway: the broker side skips what it has).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from producer.spool.backlog import SEGMENT, Backlog


def try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if a live process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # deleted and recreated while we waited
            raise BlockingIOError(errno.EAGAIN, "lock file replaced")
    except OSError:
        os.close(fd)
        return None
    return fd


def has_segments(directory: Path) -> bool:
    """Any segment in `directory` (of any owner, delivered or not yet)."""
    try:
        return any(SEGMENT.match(name) for name in os.listdir(directory))
    except OSError:
        return False


def segments_by_owner(directory: Path, *, lock_owners: bool = False) -> dict[str, list[Path]]:
    """Each owner's segment files in `directory` (in no order); with `lock_owners`, also the owners that
    have only a lock file left. Empty when the directory cannot be listed."""
    try:
        names = os.listdir(directory)
    except OSError:
        return {}
    owners: dict[str, list[Path]] = {}
    for name in names:
        if lock_owners and name.endswith(".lock"):
            owners.setdefault(name[: -len(".lock")], [])
        elif (match := SEGMENT.match(name)) is not None:
            owners.setdefault(match.group("owner"), []).append(directory / name)
    return owners


def adopt_orphans(directory: Path, skip: set[str]) -> list[Backlog]:
    """Backlogs of dead owners in `directory` (their locks are free), now locked by this process."""
    owners = segments_by_owner(directory, lock_owners=True)
    adopted = []
    for owner, segments in sorted(owners.items()):
        if owner in skip:
            continue
        fd = try_lock(directory / f"{owner}.lock")
        if fd is None:
            continue
        # Re-list under the lock: another adopter may have finished (and deleted) them meanwhile.
        segments = [s for s in segments if s.exists()]
        backlog = Backlog(directory, owner, fd, segments)
        if backlog.empty:
            backlog.release(delete_lock=True)
        else:
            adopted.append(backlog)
    return adopted
