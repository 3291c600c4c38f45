"""Reading one owner's segments front to back: what is undelivered, and marking it delivered.

Each segment has an `.ack` file beside it: how many of its bytes are delivered (renamed into place, so an
adopter never reads half an offset). A fully delivered segment nobody writes to any more is deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from epochstream.atomic import atomic_write_text
from producer.spool.framing import HEADER, MAX_RECORD_BYTES, Record, parse

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
    """Renamed into place, so an adopter never reads half an offset. Not fsynced: the offset only saves
    work (a lost one redelivers records the broker skips)."""
    with contextlib.suppress(OSError):
        atomic_write_text(_ack_path(segment), str(offset), fsync=False)


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
