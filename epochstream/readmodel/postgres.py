"""The read model in PostgreSQL (`EPOCHSTREAM_READ_MODEL_URL=postgresql://...`): shared by many hosts.

    public.epochstream_readmodel   one row: the generation in use and since when
    schema "rm_<generation>"       that generation's tables (`database.DDL`, in `dialect.POSTGRES` types)
    schema "building_<generation>" a rebuild in progress: no reader looks at it

The same tables and statements as SQLite, through `PgConnection` (placeholders translated, errors turned
into ours by `pg_errors`). What differs, and why:
- a write transaction takes a transaction-scoped advisory lock on (generation, partition) before it reads
  the tracking record: two drains of one partition on different hosts serialize there, so the fence check
  holds until COMMIT (SQLite's BEGIN IMMEDIATE does this with its one write lock); other partitions' drains
  do not wait for each other;
- readers use autocommit READ COMMITTED sessions set read-only: every statement sees the last commit and
  none waits for a writer (MVCC); before each query they read the pointer row, like `stat` of CURRENT;
- `rebuild` renames its finished schema to `rm_<generation>` and moves the pointer in one transaction; the
  old schema stays whole for `RETIRE_AFTER_S`, then is dropped;
- long polls watch the sum of the tracking records' batch counters: every drained batch's commit moves it
  (PostgreSQL has no `PRAGMA data_version`), one small indexed read per tick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from epochstream.readmodel.database import DDL, SCHEMA_VERSION
from epochstream.readmodel.dialect import POSTGRES
from epochstream.readmodel.errors import ReadModelError, ReadModelMissing
from epochstream.readmodel.location import RETIRE_AFTER_S, Location
from epochstream.readmodel.pg_errors import connect_error, postgres_error

POINTER = "public.epochstream_readmodel"
POINTER_DDL = (f"CREATE TABLE IF NOT EXISTS {POINTER} (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), "
               "generation TEXT NOT NULL, since TIMESTAMPTZ NOT NULL DEFAULT now())")
CREATE_LOCK = 0x65706F63  # advisory lock key while a first generation, a DDL or a swap is made ("epoc")
PREFIX, BUILDING = "rm_", "building_"
CONNECT_TIMEOUT_S = 10
CHANGE_PROBE = "SELECT coalesce(sum(batches), 0)::bigint FROM tracking"  # PRAGMA data_version's stand-in


def masked(url: str) -> str:
    """The URL for messages: host, port and database, never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<an unparseable EPOCHSTREAM_READ_MODEL_URL>"
    return f"postgresql://{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _without_nul(row: Sequence) -> Sequence:
    """PostgreSQL text cannot hold NUL, which SQLite stores and the event contract allows in a project, a
    name or a tag: such a value is stored, and looked for, with U+FFFD in its place. Filters still match
    (their values are mapped the same way) and the summary document keeps the exact text (JSON escapes it)."""
    for value in row:
        if value.__class__ is str and "\x00" in value:
            return [v.replace("\x00", "\ufffd") if v.__class__ is str else v for v in row]
    return row


class PgConnection:
    """A psycopg connection that takes the read model's `?` statements, as sqlite3's does, and raises only
    our errors."""

    def __init__(self, raw: psycopg.Connection, where: str):
        self.raw, self.where = raw, where

    def execute(self, statement: str, params: Sequence | None = ()) -> psycopg.Cursor:
        try:
            if params is None:  # a script (DDL): sent as is, several statements allowed
                return self.raw.execute(statement)  # type: ignore[arg-type]
            return self.raw.execute(POSTGRES.sql(statement), _without_nul(params))  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise postgres_error(exc, self.where) from exc

    def executemany(self, statement: str, rows: Sequence[Sequence]) -> None:
        try:
            with self.raw.cursor() as cur:
                cur.executemany(POSTGRES.sql(statement), [_without_nul(row) for row in rows])  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise postgres_error(exc, self.where) from exc

    def use_schema(self, schema: str) -> None:
        self.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)).as_string(self.raw), None)

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.raw.close()


class PostgresStore:
    dialect = POSTGRES
    new_generation = staticmethod(Location.new_generation)

    def __init__(self, url: str):
        self.url = url
        self.where = masked(url)

    def describe(self) -> str:
        return self.where

    def connect(self, *, read_only: bool = False) -> PgConnection:
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                  application_name="epochstream")
        except psycopg.Error as exc:
            raise connect_error(exc, self.where) from exc
        con = PgConnection(raw, self.where)
        con.execute("SET TIME ZONE 'UTC'", None)
        if read_only:  # the API's and CLI's sessions can never write, by construction
            con.execute("SET default_transaction_read_only = on", None)
        return con

    # -- generations ------------------------------------------------------------------------------------
    @staticmethod
    def schema_of(generation: str) -> str:
        return PREFIX + generation

    def _pointer(self, con: PgConnection) -> tuple[str, float] | None:
        """(generation in use, seconds since it was swapped in), None before the first."""
        try:
            row = con.execute(f"SELECT generation, extract(epoch FROM now() - since) FROM {POINTER}").fetchone()
        except ReadModelMissing:
            return None
        return (row[0], float(row[1])) if row else None

    def current(self) -> tuple[str, str] | None:
        con = self.connect(read_only=True)
        try:
            found = self._pointer(con)
        finally:
            con.close()
        return None if found is None else (found[0], self.schema_of(found[0]))

    def current_or_create(self) -> tuple[str, str]:
        con = self.connect()
        try:
            generation = self._current_or_create(con)
        finally:
            con.close()
        return generation, self.schema_of(generation)

    def _current_or_create(self, con: PgConnection) -> str:
        """The generation in use; the first is made here, under an advisory lock, so hosts starting at once
        agree on it."""
        found = self._pointer(con)
        if found is None:
            with self._locked(con, "?::int", (CREATE_LOCK,)):
                con.execute(POINTER_DDL, None)
                found = self._pointer(con)
                if found is None:
                    generation = self.new_generation()
                    self._create_schema(con, self.schema_of(generation))
                    con.execute(f"INSERT INTO {POINTER} (generation) VALUES (?)", (generation,))
                    found = (generation, 0.0)
        return found[0]

    def open_current(self) -> tuple[str, str, PgConnection]:
        """(generation in use, its schema, a writer's connection to it), old generations retired: on one
        connection, because a drain job opens it (each new backend costs the server milliseconds)."""
        con = self.connect()
        try:
            generation = self._current_or_create(con)
            self._retire(con, RETIRE_AFTER_S)
            self._prepare_writer(con, self.schema_of(generation), durable=True)
        except BaseException:
            con.close()
            raise
        return generation, self.schema_of(generation), con

    @staticmethod
    @contextlib.contextmanager
    def _locked(con: PgConnection, key_sql: str, key: tuple, durable: bool = True) -> Iterator[None]:
        """A transaction holding the advisory lock `key_sql` (bound to `key`) until it ends. `durable=False`:
        its COMMIT does not wait for the WAL flush."""
        con.execute("BEGIN", None)
        try:
            con.execute(f"SELECT pg_advisory_xact_lock({key_sql})", key)
            if not durable:
                con.execute("SET LOCAL synchronous_commit = off", None)
            yield
        except BaseException:
            with contextlib.suppress(ReadModelError):
                con.execute("ROLLBACK", None)
            raise
        con.execute("COMMIT", None)

    @staticmethod
    def _create_schema(con: PgConnection, schema: str) -> None:
        con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)).as_string(con.raw),
                    None)
        con.use_schema(schema)
        con.execute(POSTGRES.ddl(DDL), None)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", (str(SCHEMA_VERSION),))

    def _schemas(self, con: PgConnection, prefix: str) -> list[str]:
        rows = con.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, ?)", (prefix,)).fetchall()
        return [name for (name,) in rows]

    def _drop(self, con: PgConnection, schema: str) -> None:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)).as_string(con.raw),
                    None)

    def retire_old(self, older_than_s: float = RETIRE_AFTER_S) -> list[str]:
        """Drop the schemas of other generations once the current one has been in use for `older_than_s`:
        by then no reader is still on an old one (they check the pointer before every query)."""
        con = self.connect()
        try:
            return self._retire(con, older_than_s)
        finally:
            con.close()

    def _retire(self, con: PgConnection, older_than_s: float) -> list[str]:
        found = self._pointer(con)
        if found is None or found[1] < older_than_s:
            return []
        current = self.schema_of(found[0])
        if not [s for s in self._schemas(con, PREFIX) if s != current]:
            return []  # the common case, for every drain job: nothing to retire, no lock taken
        with self._locked(con, "?::int", (CREATE_LOCK,)):  # drains of many hosts may find the same old schema
            found = self._pointer(con)
            current = self.schema_of(found[0]) if found else current
            doomed = [s for s in self._schemas(con, PREFIX) if s != current]
            for schema in doomed:
                self._drop(con, schema)
        return doomed

    # -- the writer -------------------------------------------------------------------------------------
    def connect_writer(self, target: str, *, durable: bool = True) -> PgConnection:
        con = self.connect()
        try:
            self._prepare_writer(con, target, durable=durable)
        except BaseException:
            con.close()
            raise
        return con

    def _prepare_writer(self, con: PgConnection, target: str, *, durable: bool) -> None:
        if not durable:  # a rebuild into a schema nobody reads yet: a crash means starting over
            con.execute("SET synchronous_commit = off", None)
        con.use_schema(target)
        if self.schema_version(con) != SCHEMA_VERSION:
            with self._locked(con, "?::int", (CREATE_LOCK,)):
                self._create_schema(con, target)

    @staticmethod
    def schema_version(con: PgConnection) -> int | None:
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except ReadModelMissing:
            return None
        return int(row[0]) if row else None

    def transaction(self, con: PgConnection, partition: int, *,
                    durable: bool = True) -> contextlib.AbstractContextManager[None]:
        """One write transaction, holding the partition's advisory lock in this generation (see the module's
        docstring). `durable=False`: COMMIT does not wait for the WAL flush (a claim)."""
        return self._locked(con, "hashtext(current_schema()), ?::int", (partition,), durable)

    # -- rebuild ----------------------------------------------------------------------------------------
    def building_target(self, generation: str) -> str:
        con = self.connect()
        try:
            with self._locked(con, "?::int", (CREATE_LOCK,)):
                con.execute(POINTER_DDL, None)
        finally:
            con.close()
        return BUILDING + generation

    def unfinished(self) -> list[str]:
        """The schemas of rebuilds killed before their swap."""
        con = self.connect()
        try:
            return self._schemas(con, BUILDING)
        finally:
            con.close()

    def discard_unfinished(self) -> list[str]:
        """Drop what `unfinished` names: only under the maintenance lock (a rebuild in progress holds it)."""
        doomed = self.unfinished()
        for schema in doomed:
            self.discard_building(schema)
        return doomed

    @staticmethod
    def finish_building(con: PgConnection) -> None:
        con.execute("ANALYZE", None)  # fresh tables: give the planner their sizes before readers arrive

    def swap_in(self, generation: str, target: str) -> None:
        """Rename the built schema to its final name and point to it, in one transaction: readers see the
        old generation until COMMIT and the new, complete one after."""
        con = self.connect()
        try:
            with self._locked(con, "?::int", (CREATE_LOCK,)):
                con.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(target), sql.Identifier(self.schema_of(generation))).as_string(con.raw), None)
                con.execute(f"INSERT INTO {POINTER} (generation) VALUES (?) ON CONFLICT (one) DO UPDATE SET "
                            "generation = excluded.generation, since = now()", (generation,))
        finally:
            con.close()

    def discard_building(self, target: str) -> None:
        con = self.connect()
        try:
            self._drop(con, target)
        finally:
            con.close()

    # -- readers ----------------------------------------------------------------------------------------
    def reader_link(self) -> PostgresLink:
        return PostgresLink(self)


class PostgresLink:
    """A reader's session: reads the pointer row before each query and moves its search_path after a swap."""

    def __init__(self, store: PostgresStore):
        self.store = store
        self.generation: str | None = None
        self.con: PgConnection | None = None

    def refresh(self) -> bool:
        if self.con is not None and (self.con.raw.closed or self.con.raw.broken):
            self.close()  # the server dropped it (a restart, a failover, a terminated backend): open another
        if self.con is None:
            self.con = self.store.connect(read_only=True)
        try:
            found = self.store._pointer(self.con)
        except ReadModelError:
            self.close()  # a dropped connection: the next query opens a new one
            raise
        if found is None:
            return False
        if found[0] != self.generation:
            self.con.use_schema(self.store.schema_of(found[0]))
            self.generation = found[0]
        return True

    def query(self, statement: str, params: tuple | list = ()) -> list[tuple]:
        assert self.con is not None
        return self.con.execute(statement, params).fetchall()

    def run(self, statement: str, params: tuple | list = ()) -> tuple[str | None, list[tuple]]:
        """Follow the pointer and run one query, in one round trip: the pointer row and the query go in one
        pipeline, the query on the generation this session is on. Rows come back when the pointer still
        names that generation (what SQLite's `stat`-then-query gives too); after a swap the query is run
        again on the new one."""
        con = self.con
        if con is None or self.generation is None or con.raw.closed or con.raw.broken:
            return self._run_fresh(statement, params)
        try:
            with con.raw.pipeline():
                pointer = con.raw.execute(f"SELECT generation FROM {POINTER}")
                data = con.raw.execute(POSTGRES.sql(statement), _without_nul(params))  # type: ignore[arg-type]
            found, rows = pointer.fetchone(), data.fetchall()
        except psycopg.Error as exc:
            error = postgres_error(exc, con.where)
            if not isinstance(error, ReadModelMissing):
                raise error from exc
            found, rows = None, []  # our generation's schema is gone: it was retired under us
        if found is not None and found[0] == self.generation:
            return self.generation, rows
        return self._run_fresh(statement, params)

    def _run_fresh(self, statement: str, params: tuple | list) -> tuple[str | None, list[tuple]]:
        if not self.refresh():
            return None, []
        return self.generation, self.query(statement, params)

    def data_version(self) -> int:
        """The sum of the partitions' batch counters: every drained batch's commit moves it."""
        ((total,),) = self.query(CHANGE_PROBE)
        return total

    def close(self) -> None:
        con, self.con, self.generation = self.con, None, None
        if con is not None:
            con.close()
