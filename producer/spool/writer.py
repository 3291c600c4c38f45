"""This process's own spool: records appended behind everything spooled before, delivered from the front."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import time
import uuid
from pathlib import Path

from epochstream.atomic import fsync_dir
from producer.spool.adoption import try_lock
from producer.spool.backlog import Backlog
from producer.spool.framing import Record, frame


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
            fd = try_lock(self.directory / f"{self.owner}.lock")
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
            fsync_dir(self.directory, strict=False)
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


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", text)[:40] or "host"
