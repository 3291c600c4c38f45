"""What waits in a spool directory, and why: for `epochstream spool status` and `spool push`.

Read-only: segments are parsed as an adopter would parse them (from the delivered offset of the `.ack`
file on), never changed. Whether a segment's writer is alive is told by its owner's lock (see
`producer.spool.adoption`): free means the writer is gone and anyone may deliver it; held means its writer is
alive (it delivers them itself once the broker takes them) or another process has adopted it and is
delivering it now.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from producer.spool.adoption import segments_by_owner
from producer.spool.backlog import read_ack, segment_number
from producer.spool.framing import parse
from producer.spool.writer import safe_name
from schemas.keys import Keys

WRITING, ADOPTED, ORPHANED = "writing", "adopted", "orphaned"


@dataclass
class RunCount:
    run_id: str
    events: int
    first_seq: int
    last_seq: int


@dataclass
class OwnerStatus:
    """The undelivered spool of one producer process (its `owner` name is `host.pid.token`)."""

    owner: str
    host: str
    pid: int | None
    state: str  # WRITING, ADOPTED or ORPHANED
    segments: list[Path] = field(default_factory=list)
    bytes: int = 0
    runs: list[RunCount] = field(default_factory=list)
    torn_bytes: int = 0  # a torn tail (its writer died mid-write): skipped by every reader

    @property
    def events(self) -> int:
        return sum(r.events for r in self.runs)

    @property
    def why(self) -> str:
        if self.state == WRITING:
            return (f"its writer (pid {self.pid}) is alive and delivers them itself as soon as the broker takes "
                    "them")
        if self.state == ADOPTED:
            return "another process on this host has adopted them and is delivering them now"
        return ("their writer is gone: `epochstream spool push`, `epochstream up` or `epochstream worker` on this "
                "host delivers them")


def run_id_of(seq_key: str) -> str:
    """The run id in a record's dedupe key (`{ns}:seq:{p}:{run_id}` with an optional `#attempt`)."""
    return Keys.run_id_of(seq_key)


def spool_status(directory: Path) -> list[OwnerStatus]:
    """Every owner with undelivered records in `directory`, oldest segment first within each."""
    out = []
    for owner, paths in sorted(segments_by_owner(directory).items()):
        status = _owner_status(directory, owner, sorted(paths, key=segment_number))
        if status.events or status.torn_bytes:
            out.append(status)
    return out


def _owner_status(directory: Path, owner: str, paths: list[Path]) -> OwnerStatus:
    host, pid = _host_and_pid(owner)
    status = OwnerStatus(owner, host, pid, _state(directory / f"{owner}.lock", host, pid))
    counts: dict[str, RunCount] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # delivered and deleted meanwhile
        start = min(read_ack(path), len(data))
        parsed = parse(data[start:], start)
        if parsed.records:
            status.segments.append(path)
            status.bytes += parsed.end - start
        if parsed.torn and status.state != WRITING:
            status.torn_bytes += len(data) - parsed.end
        for record, _ in parsed.records:
            run_id = run_id_of(record.seq_key)
            found = counts.get(run_id)
            if found is None:
                counts[run_id] = RunCount(run_id, 1, record.seq, record.seq)
            else:
                found.events += 1
                found.first_seq = min(found.first_seq, record.seq)
                found.last_seq = max(found.last_seq, record.seq)
    status.runs = sorted(counts.values(), key=lambda r: r.run_id)
    return status


def _host_and_pid(owner: str) -> tuple[str, int | None]:
    host, _, rest = owner.rpartition(".")  # host.pid.token: the host may hold dots itself
    host, _, pid = host.rpartition(".")
    return host, int(pid) if pid.isdigit() else None


def _state(lock: Path, host: str, pid: int | None) -> str:
    """Whether the owner's lock is free (ORPHANED), held by its live writer (WRITING) or by an adopter."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return ORPHANED  # no lock file: nobody can be holding it
    try:
        # A shared lock is refused only while someone holds the exclusive one; taken, it goes at once.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return ORPHANED
    except OSError:
        return WRITING if host == safe_name(socket.gethostname()) and pid is not None and _alive(pid) else ADOPTED
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
