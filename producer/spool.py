"""The on-disk spool: where events wait, in order, while the broker is away.

Layout, under `<spool_dir>/<namespace>/`:

    <owner>.lock         flock-ed for its whole life by the process that writes <owner>'s segments
    <owner>-<n>.seg      append-only segments of records, n = 1, 2, ... in write order
    <owner>-<n>.seg.ack  how many bytes of that segment are delivered (an optimisation, see below)

A record is `length (4 bytes, big-endian) | crc32 of body (4 bytes) | body`, and a body is the header line
`stream \\t seq_key \\t seq \\n` followed by the encoded event. A process killed mid-write (SIGKILL, OOM)
leaves a torn last record: its length or checksum does not match, and the reader stops there. Nothing
follows a torn record, because only its owner ever appends to a segment, and the owner is dead.

An owner whose lock can be taken is dead: any process using the same spool directory adopts its
segments, delivers them and deletes them. The lock is what keeps two live processes from replaying the
same segment. Delivering a record twice is harmless anyway: the broker side skips any `seq` at or below
the run's high-water mark (see `producer.delivery`), so the `.ack` files only save work.

Writes happen on the publisher's background thread only; the training loop never touches the disk.
Bytes are fsynced at most every `spool_fsync_s` (a killed process loses nothing that was written: the
page cache outlives it; the fsync is for power loss).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from producer.framing import HEADER, MAX_RECORD_BYTES, Parsed, Record, frame, parse

__all__ = ["HEADER", "MAX_RECORD_BYTES", "Backlog", "Parsed", "Record", "Spool", "adopt_orphans", "frame",
           "has_segments", "parse"]

READ_CHUNK = 1024 * 1024
SEGMENT = re.compile(r"^(?P<owner>[A-Za-z0-9_.-]+)-(?P<n>\d+)\.seg$")


def read_ack(segment: Path) -> int:
    try:
        return int(_ack_path(segment).read_text() or 0)
    except (OSError, ValueError):
        return 0


def _ack_path(segment: Path) -> Path:
    return segment.with_name(segment.name + ".ack")


def _write_ack(segment: Path, offset: int) -> None:
    """Renamed into place, so an adopter never reads half an offset. (Not `epochstream.layout`'s writer:
    that module imports pyarrow, which training processes should not pay for.)"""
    ack = _ack_path(segment)
    tmp = ack.with_name(f".{ack.name}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(str(offset))
        os.replace(tmp, ack)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class Backlog:
    """The segments of one owner, delivered front to back.

    `peek(n)` returns up to n undelivered records in order without consuming them; `ack(k)` marks the
    first k of them delivered. A fully delivered segment that nobody writes to any more is deleted.
    """

    def __init__(self, directory: Path, owner: str, lock_fd: int, segments: Iterable[Path] = ()):
        self.directory = directory
        self.owner = owner
        self.lock_fd = lock_fd
        self.segments: list[Path] = sorted(segments, key=segment_number)
        self.writing: Path | None = None  # the segment its live owner appends to: never deleted by reads
        self.skipped_bytes = 0  # torn tails left behind
        self._buffer: list[tuple[Record, int]] = []  # parsed, undelivered records of the front segment
        self._read_to = read_ack(self.segments[0]) if self.segments else 0

    @property
    def empty(self) -> bool:
        return not self.segments

    def peek(self, limit: int) -> list[Record]:
        while len(self._buffer) < limit and self.segments:
            if self._fill():
                continue
            if self._buffer or self.segments[0] == self.writing:
                break
            self.drop_front()  # a finished segment with nothing left: on to the next one
        return [record for record, _ in self._buffer[:limit]]

    def ack(self, count: int) -> None:
        """The first `count` records returned by `peek` are in the broker."""
        if count <= 0:
            return
        offset = self._buffer[count - 1][1]
        del self._buffer[:count]
        front = self.segments[0]
        if not self._buffer and front != self.writing and offset >= _size(front):
            self.drop_front()
        else:
            _write_ack(front, offset)

    @property
    def fully_delivered(self) -> bool:
        """Nothing is left, not even in the segment being written."""
        return not self._buffer and (not self.segments or (
            self.segments == [self.writing] and self._read_to >= _size(self.writing)))

    def _fill(self) -> bool:
        """Parse more of the front segment into the buffer; False when it has nothing more to give."""
        segment = self.segments[0]
        try:
            with open(segment, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(self._read_to)
                data = fh.read(READ_CHUNK)
                if len(data) >= HEADER.size:  # one record larger than a chunk is read whole
                    length = HEADER.unpack_from(data)[0]
                    if len(data) < HEADER.size + length and length <= MAX_RECORD_BYTES:
                        data += fh.read(HEADER.size + length - len(data))
        except OSError:
            return False
        if not data:
            return False
        start = self._read_to
        parsed = parse(data, start)
        self._buffer.extend(parsed.records)
        self._read_to = parsed.end
        at_eof = start + len(data) >= size
        cut_by_chunk = parsed.torn and parsed.records and not at_eof
        if parsed.torn and not cut_by_chunk and segment != self.writing:
            # A torn tail (the owner died mid-write) or a corrupt record: nothing after it is trusted.
            self.skipped_bytes += size - self._read_to
            self._read_to = size
        return bool(parsed.records)

    def drop_front(self) -> None:
        segment = self.segments.pop(0)
        _remove(segment)
        _remove(_ack_path(segment))
        self._buffer.clear()
        self._read_to = read_ack(self.segments[0]) if self.segments else 0

    def forget_inherited(self) -> None:
        """In a forked child: close our copy of the parent's lock descriptor (the parent keeps the lock)."""
        with contextlib.suppress(OSError):
            if self.lock_fd >= 0:
                os.close(self.lock_fd)
        self.lock_fd = -1

    def release(self, delete_lock: bool) -> None:
        """Give the owner's lock up; with `delete_lock` (nothing left) the lock file goes too."""
        if self.lock_fd < 0:
            return
        if delete_lock:
            _remove(self.directory / f"{self.owner}.lock")
        os.close(self.lock_fd)
        self.lock_fd = -1


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def segment_number(path: Path) -> int:
    match = SEGMENT.match(path.name)
    return int(match.group("n")) if match else 0


def _try_lock(path: Path) -> int | None:
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


def adopt_orphans(directory: Path, skip: set[str]) -> list[Backlog]:
    """Backlogs of dead owners in `directory` (their locks are free), now locked by this process."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    owners: dict[str, list[Path]] = {}
    for name in names:
        if name.endswith(".lock"):
            owners.setdefault(name[: -len(".lock")], [])
        elif (match := SEGMENT.match(name)) is not None:
            owners.setdefault(match.group("owner"), []).append(directory / name)
    adopted = []
    for owner, segments in sorted(owners.items()):
        if owner in skip:
            continue
        fd = _try_lock(directory / f"{owner}.lock")
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


class Spool:
    """This process's own spool: append records behind everything spooled before, deliver from the front.

    Files appear only when something is spooled. `pending` is True while any own record is undelivered;
    the publisher sends new events behind them (to the spool) until it is False again, so a run's events
    are never reordered.
    """

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int, fsync_s: float):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync_s = fsync_s
        self.owner = f"{safe_name(socket.gethostname())}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.backlog: Backlog | None = None
        self._fd = -1
        self._sizes: dict[Path, int] = {}  # own segments on disk -> bytes written to each
        self._dirty_since: float | None = None
        self._next_segment = 1

    @property
    def pending(self) -> bool:
        return self.backlog is not None and not self.backlog.empty

    @property
    def bytes_on_disk(self) -> int:
        return sum(self._sizes.values())

    def append(self, records: list[Record]) -> bool:
        """Append in order. False (nothing written) when the spool is full; OSError if the disk refuses."""
        data = b"".join(frame(r) for r in records)
        if self.bytes_on_disk + len(data) > self.max_bytes:
            return False
        path = self._segment_for(len(data))
        before = self._sizes[path]
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write to the spool ({written} of {len(data)} bytes)")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)  # never leave half a record behind
            raise
        self._sizes[path] = before + len(data)
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self.sync_if_due()
        return True

    def _segment_for(self, nbytes: int) -> Path:
        if self.backlog is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = _try_lock(self.directory / f"{self.owner}.lock")
            if fd is None:
                raise OSError(errno.EACCES, f"cannot lock the spool in {self.directory}")
            self.backlog = Backlog(self.directory, self.owner, fd)
        writing = self.backlog.writing
        if writing is not None and self._sizes[writing] + nbytes <= self.segment_bytes:
            return writing
        self._close_segment()
        path = self.directory / f"{self.owner}-{self._next_segment}.seg"
        self._next_segment += 1
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._sizes[path] = 0
        self.backlog.segments.append(path)
        self.backlog.writing = path
        if self.fsync_s == 0:
            _fsync_dir(self.directory)
        return path

    def _close_segment(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
        if self.backlog is not None:
            self.backlog.writing = None

    def peek(self, limit: int) -> list[Record]:
        return self.backlog.peek(limit) if self.backlog is not None else []

    def ack(self, count: int) -> None:
        """The first `count` peeked records are delivered. An emptied spool removes its files."""
        if self.backlog is None:
            return
        self.backlog.ack(count)
        if self.backlog.fully_delivered and self.backlog.writing is not None:
            self._close_segment()
            self.backlog.drop_front()  # the emptied segment we were writing: begin afresh next time
        for gone in set(self._sizes) - set(self.backlog.segments):
            del self._sizes[gone]

    def sync_if_due(self) -> None:
        if self._dirty_since is not None and time.monotonic() - self._dirty_since >= self.fsync_s:
            self.sync()

    def sync(self) -> None:
        if self._fd >= 0 and self._dirty_since is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
        self._dirty_since = None

    def forget_inherited(self) -> None:
        """In a forked child: close the copies of the parent's descriptors, touch nothing on disk."""
        with contextlib.suppress(OSError):
            if self._fd >= 0:
                os.close(self._fd)
        self._fd = -1
        if self.backlog is not None:
            self.backlog.forget_inherited()

    def close(self) -> None:
        """fsync and let go. Undelivered segments stay for this or a later process to adopt."""
        self._close_segment()
        if self.backlog is not None:
            self.backlog.release(delete_lock=self.backlog.empty)
            self.backlog = None
        self._sizes.clear()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", text)[:40] or "host"
