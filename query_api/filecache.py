"""Parsed files cached by identity, so hot polls never re-read Parquet or JSON.

Workers replace every projection file by atomic rename. A reader that opens a path gets the old file
or the new one; `fstat` on the opened descriptor names exactly the version that was parsed, so the
cache key (and every ETag built from it) always matches the content. A file that vanishes between
`stat` and `open` (a rename racing us) is retried once before it counts as missing.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Generic, NamedTuple, TypeVar

import anyio

from epochstream.errors import TransientError

T = TypeVar("T")


class FileKey(NamedTuple):
    ino: int
    mtime_ns: int
    size: int


class ProjectionUnreadable(TransientError):
    """A projection file exists but cannot be parsed right now."""

    def __init__(self, path: Path, exc: BaseException):
        super().__init__(f"projection {path.name} of {path.parent.name} could not be read ({type(exc).__name__}: "
                         f"{exc}); retry shortly, and run `epochstream rebuild` if it persists")


def stat_key(path: Path) -> FileKey | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileKey(st.st_ino, st.st_mtime_ns, st.st_size)


class FileCache(Generic[T]):
    """An LRU of `parse(open file) -> T` results keyed by path and file identity. Thread-safe."""

    def __init__(self, parse: Callable[[IO[bytes]], T], max_entries: int):
        self._parse = parse
        self._max = max_entries
        self._entries: OrderedDict[Path, tuple[FileKey, T]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, path: Path, key: FileKey | None) -> T | None:
        if key is None:
            return None
        with self._lock:
            hit = self._entries.get(path)
            if hit is None or hit[0] != key:
                return None
            self._entries.move_to_end(path)
            return hit[1]

    def load(self, path: Path) -> tuple[FileKey, T] | None:
        """Read and parse the current version; None if the file does not exist."""
        for attempt in (1, 2):
            try:
                with open(path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    key = FileKey(st.st_ino, st.st_mtime_ns, st.st_size)
                    hit = self.cached(path, key)
                    if hit is not None:
                        return key, hit
                    try:
                        value = self._parse(fh)
                    except Exception as exc:  # noqa: BLE001 - any parser failure is a transient read error
                        raise ProjectionUnreadable(path, exc) from exc
            except (FileNotFoundError, NotADirectoryError):
                if attempt == 2:
                    return None
                continue
            except OSError as exc:
                raise ProjectionUnreadable(path, exc) from exc
            with self._lock:
                self._entries[path] = (key, value)
                self._entries.move_to_end(path)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
            return key, value
        return None

    async def get(self, path: Path) -> tuple[FileKey, T] | None:
        """Current (key, value): from memory when the file is unchanged, else parsed off the event loop."""
        key = stat_key(path)
        if key is None:
            # Missing now; a rename may be in flight, so look once more (open() of a missing file is cheap).
            return self.load(path)
        hit = self.cached(path, key)
        if hit is not None:
            return key, hit
        return await anyio.to_thread.run_sync(self.load, path)
