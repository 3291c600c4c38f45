"""Where the read model's database lives, and how `rebuild` swaps a fresh one in atomically.

    <data_dir>/readmodel/CURRENT            the name of the database in use (one line)
    <data_dir>/readmodel/rm-<generation>.sqlite (+ -wal, -shm)

A rebuild writes a whole new database under a new generation, then replaces CURRENT (temp file, fsync,
rename). Readers check CURRENT's identity before each query (one `stat`) and move to the new database
when it changes; until then they keep reading the old one, which stays complete: a poller never sees a
missing run or an empty history during a swap. An old generation is deleted once it has been out of use
for `RETIRE_AFTER_S`. The database file is never renamed, because SQLite's -wal and -shm files are found
by name: renaming a live database over another corrupts it.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from epochstream.layout import atomic_write_bytes

POINTER = "CURRENT"
PREFIX, SUFFIX = "rm-", ".sqlite"
RETIRE_AFTER_S = 300.0  # a reader's query on an old generation finishes well within this


@dataclass(frozen=True)
class Location:
    directory: Path

    @classmethod
    def of(cls, data_dir: Path) -> Location:
        return cls(Path(data_dir) / "readmodel")

    @property
    def pointer(self) -> Path:
        return self.directory / POINTER

    def path_of(self, generation: str) -> Path:
        return self.directory / f"{PREFIX}{generation}{SUFFIX}"

    def current(self) -> tuple[str, Path] | None:
        """(generation, database path) in use, or None before the first one exists."""
        try:
            name = self.pointer.read_text().strip()
        except FileNotFoundError:
            return None
        if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
            return None
        return name[len(PREFIX):-len(SUFFIX)], self.directory / name

    def pointer_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    @staticmethod
    def new_generation() -> str:
        return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"

    def point_to(self, generation: str) -> None:
        """Make `generation` the one in use (atomically, durably)."""
        atomic_write_bytes(self.pointer, f"{PREFIX}{generation}{SUFFIX}\n".encode())

    def retire_old(self, older_than_s: float = RETIRE_AFTER_S) -> list[Path]:
        """Delete the databases of other generations (and their -wal/-shm) once the current one has been in
        use for `older_than_s`: by then no reader is still on an old one."""
        current = self.current()
        identity = self.pointer_identity()
        if current is None or identity is None or time.time() - identity[1] / 1e9 < older_than_s:
            return []
        removed: list[Path] = []
        stale = [p for p in self.directory.glob(f"building-*{SUFFIX}") if time.time() - p.stat().st_mtime > 3600]
        for path in [*self.directory.glob(f"{PREFIX}*{SUFFIX}"), *stale]:
            if path == current[1]:
                continue
            for extra in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                with contextlib.suppress(FileNotFoundError):
                    extra.unlink()
            removed.append(path)
        return removed
