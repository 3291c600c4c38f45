"""The SQLite database behind the read model: its tables, and connections for the one writer per
partition and any number of readers (WAL mode: readers never block the writer, nor it them). The DDL is
also PostgreSQL's, through `dialect.POSTGRES.ddl` (64-bit types, byte-wise text).

Tables (timestamps in microseconds since 1970 UTC; metric maps as JSON text, see `values`):
- `tracking`     per partition: the applied position (newest stream id committed) and the fence token of
                 the drain that holds the partition; written in the same transaction as the batch;
- `runs`         one row per run: the columns the listing filters and sorts on (`best_asc` / `best_desc`:
                 the best value, or its negation, with +inf for none, so both orders put those last), the
                 summary document,
                 the config, the trend fold state and the step rollup tail; version counters for ETags;
- `run_tags`     (tag, run) for tag filters;
- `run_events`   the lifecycle events (run_started, run_config, run_finished): a handful per run;
- `epochs`       (run, epoch) -> the winning event's row;      `steps` (run, step) -> likewise, with ordinal;
- `step_rollups` (run, level, bucket) -> the aggregate of a complete bucket (`schemas.rollups`);
- `system`       (run, event_id) -> one sample;
- `events`       (run, seq) -> the digest of every event applied: each identity once; a second payload
                 under one identity is a conflict, never merged;
- `problems`     runs whose state could not be folded (shown by `epochstream status`; fixed by rebuild).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 30_000

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tracking (
    partition INTEGER PRIMARY KEY, position TEXT NOT NULL DEFAULT '0-0', fence INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0, updated_us INTEGER);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT NOT NULL UNIQUE, partition INTEGER NOT NULL,
    project TEXT, name TEXT, status TEXT NOT NULL,
    sort_us INTEGER NOT NULL, last_seen_us INTEGER, stale_after_us INTEGER,
    best_asc REAL NOT NULL, best_desc REAL NOT NULL, epochs INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL, epochs_version INTEGER NOT NULL DEFAULT 0, steps_version INTEGER NOT NULL DEFAULT 0,
    system_version INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL, config TEXT, trend_state TEXT, step_tail TEXT);
CREATE INDEX IF NOT EXISTS runs_newest ON runs (sort_us, run_id);
CREATE INDEX IF NOT EXISTS runs_project ON runs (project, sort_us, run_id);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, sort_us, run_id);
CREATE INDEX IF NOT EXISTS runs_best_asc ON runs (best_asc, run_id);
CREATE INDEX IF NOT EXISTS runs_best_desc ON runs (best_desc, run_id);
CREATE INDEX IF NOT EXISTS runs_epochs ON runs (epochs, run_id);
CREATE INDEX IF NOT EXISTS runs_name ON runs (name, run_id);
CREATE TABLE IF NOT EXISTS run_tags (tag TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (tag, run_id))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, ts_us INTEGER NOT NULL,
    body TEXT NOT NULL, config TEXT, PRIMARY KEY (run_id, event_id));
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL, samples INTEGER, metrics TEXT NOT NULL, PRIMARY KEY (run_id, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, ord INTEGER NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL, epoch INTEGER, metrics TEXT NOT NULL, PRIMARY KEY (run_id, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS step_rollups (
    run_id TEXT NOT NULL, level INTEGER NOT NULL, bucket INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, level, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS system (
    run_id TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL, ts_us INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, event_id));
CREATE INDEX IF NOT EXISTS system_seq ON system (run_id, seq);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, digest BLOB NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS problems (run_id TEXT NOT NULL, at_us INTEGER NOT NULL, reason TEXT NOT NULL);
"""


def connect_writer(path: Path, *, durable: bool = True) -> sqlite3.Connection:
    """The connection a drain (or rebuild) writes with. `durable`: each commit is fsynced (WAL,
    synchronous=FULL), so a commit that was followed by XACK survives a power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if durable:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = FULL")
    else:  # a rebuild into a file nobody reads yet: crash = start over
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -65536")  # 64 MiB: the runs rows of a busy partition stay in memory
    if con.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:  # a drain job opens it: be quick
        con.executescript(DDL)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return con


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (the API, the CLI): it can never write, by construction."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                          check_same_thread=False)
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    con.execute("PRAGMA query_only = ON")
    return con


def schema_version(con: sqlite3.Connection) -> int | None:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else None
