"""Where the read model's database lives, and how `rebuild` swaps a fresh one in atomically.

    <data_dir>/readmodel/CURRENT            the name of the database in use (one line)
    <data_dir>/readmodel/rm-<generation>.sqlite (+ -wal, -shm)

A rebuild writes a whole new database under a new generation, then replaces CURRENT (temp file, fsync,
rename). Readers check CURRENT's identity before each query (one `stat`) and move to the new database
when it changes; until then they keep reading the old one, which stays complete: a poller never sees a
missing run or an empty history during a swap. An old generation is deleted once it has been out of use
for `RETIRE_AFTER_S`. The database file is never renamed, because SQLite's -wal and -shm files are found
by name: renaming a live database over another corrupts it.

`Location` is the SQLite *store*: with `postgres.PostgresStore` it answers the same calls (`stores.Store`),
so the writer, the reader and `rebuild` are written once for both databases.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from epochstream.layout import atomic_write_bytes, fsync_dir
from epochstream.readmodel.database import connect_reader, connect_writer, schema_version
from epochstream.readmodel.dialect import SQLITE
from epochstream.readmodel.errors import ReadModelBusy

POINTER = "CURRENT"
PREFIX, SUFFIX = "rm-", ".sqlite"
RETIRE_AFTER_S = 300.0  # a reader's query on an old generation finishes well within this


@dataclass(frozen=True)
class Location:
    directory: Path
    dialect = SQLITE

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

    # -- the store's calls (see `stores.Store`) --------------------------------------------------------------
    def describe(self) -> str:
        return str(self.directory.parent)  # the data directory, as `epochstream status` always said

    def current_or_create(self) -> tuple[str, Path]:
        """The generation in use; the first one is created here (under a lock, so two workers starting at
        once agree on it)."""
        current = self.current()
        if current is not None:
            return current
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".create.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.current()
            if current is None:
                generation = self.new_generation()
                connect_writer(self.path_of(generation)).close()
                self.point_to(generation)
                current = (generation, self.path_of(generation))
        return current

    def open_current(self) -> tuple[str, Path, sqlite3.Connection]:
        """(generation in use, its file, a writer's connection to it); old generations retired first."""
        generation, path = self.current_or_create()
        self.retire_old()
        return generation, path, self.connect_writer(path)

    def connect_writer(self, target: Path, *, durable: bool = True) -> sqlite3.Connection:
        try:
            return connect_writer(target, durable=durable)
        except sqlite3.OperationalError as exc:
            raise ReadModelBusy(f"cannot open the read model at {target}: {exc}") from exc

    @staticmethod
    def schema_version(con: sqlite3.Connection) -> int | None:
        return schema_version(con)

    @staticmethod
    @contextlib.contextmanager
    def transaction(con: sqlite3.Connection, partition: int, *, durable: bool = True) -> Iterator[None]:
        """One write transaction. BEGIN IMMEDIATE takes the database's write lock up front, so the fence check
        made inside it holds until COMMIT. `durable=False`: this commit is not fsynced (a claim)."""
        del partition  # SQLite has one write lock for the whole database
        if not durable:
            con.execute("PRAGMA synchronous = NORMAL")
        try:
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise ReadModelBusy(f"the read model stayed locked: {exc}") from exc
            try:
                yield
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            if not durable:
                con.execute("PRAGMA synchronous = FULL")

    def reader_link(self) -> SqliteLink:
        return SqliteLink(self)

    # -- rebuild ----------------------------------------------------------------------------------------
    def building_target(self, generation: str) -> Path:
        """Where a rebuild writes: a name no reader looks at."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / f"building-{generation}{SUFFIX}"

    @staticmethod
    def finish_building(con: sqlite3.Connection) -> None:
        con.execute("PRAGMA journal_mode = WAL")  # built unjournalled; readers need WAL

    def swap_in(self, generation: str, target: Path) -> None:
        final = self.path_of(generation)
        os.replace(target, final)  # nothing has it open now, and it has no -wal yet: a rename is safe
        fsync_dir(self.directory)
        self.point_to(generation)

    @staticmethod
    def discard_building(target: Path) -> None:
        for extra in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm"),
                      target.with_name(target.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                extra.unlink()


class SqliteLink:
    """A reader's connection, following CURRENT: checked (one `stat`) before each query, reopened after a
    swap; until then the old database, which stays whole, is read."""

    def __init__(self, location: Location):
        self.location = location
        self.identity: tuple[int, int] | None = None
        self.generation: str | None = None
        self.con: sqlite3.Connection | None = None

    def refresh(self) -> bool:
        """Follow the pointer; False while there is no read model yet."""
        identity = self.location.pointer_identity()
        if self.con is not None and identity == self.identity:
            return True
        self.close()
        current = self.location.current() if identity is not None else None
        if current is None:
            return False
        try:
            con = connect_reader(current[1])
        except sqlite3.OperationalError as exc:
            raise ReadModelBusy(f"cannot open the read model {current[1]}: {exc}") from exc
        self.identity, self.generation, self.con = identity, current[0], con
        return True

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        assert self.con is not None
        try:
            return self.con.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise ReadModelBusy(f"the read model could not be read right now ({exc}); retry") from exc

    def run(self, sql: str, params: tuple | list = ()) -> tuple[str | None, list[tuple]]:
        """Follow CURRENT, then run one query: (generation it ran on, rows); (None, []) before any."""
        if not self.refresh():
            return None, []
        return self.generation, self.query(sql, params)

    def data_version(self) -> int:
        """Changes whenever another connection commits: what long polls watch (no rows read)."""
        assert self.con is not None
        return self.con.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        self.con, self.generation, self.identity = None, None, None
