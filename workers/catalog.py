"""The DuckDB catalog `epochstream.duckdb`: views over the Parquet log and read-model snapshots, no data of its own.

Views (every one counts each event once, by (run_id, event_id), whatever the log physically holds):
- `runs`          one row per run, from the newest read-model snapshot (`workers.snapshots`): status,
                  timestamps, config, error, best epoch, flags;
- `trends`        the trend flags and recommendation of each run;
- `epochs`        wide: one row per (run, epoch), one column per core metric plus the full `metrics` map; for
                  one epoch the latest seq wins, and an attempt that resumed a run hides the earlier
                  attempt's epochs from the first one it logged (as in the API);
- `epoch_metrics` long: one row per (run, epoch, metric);
- `steps`, `step_metrics`  the same for training steps;
- `run_started`, `run_config`, `run_finished`  the lifecycle events;
- `system`        one row per system sample; `system_gpus` one row per GPU per sample;
  `system_1m`     per-run one-minute rollups (mean CPU, max RSS, mean/max GPU utilisation and memory);
- `dead_letters`  every dead-lettered entry with its reason and original payload;
- `quarantine`    every log segment moved aside as unreadable: why, when, and what was recovered (`workers.quarantine`).
The file is written once by a short-lived connection and only read afterwards, so any number of processes
may open it read-only while workers run. Every glob always matches at least a zero-row `_seed.parquet`
with the right schema: a fresh data directory is queryable before the first event arrives.

Paths in the views are relative to the data directory, so a copy of it, or the same volume mounted at
another path, answers the same queries. DuckDB resolves them against `file_search_path`, which
`open_catalog` sets to the data directory (an analyst's own session: `SET file_search_path = '<data dir>'`,
or start DuckDB in the data directory). With the log on S3 (`EPOCHSTREAM_LOG_URL=s3://...`) the log views read
`s3://bucket/prefix/<type>/*.parquet` instead: `open_catalog` registers an `s3fs` filesystem on its
connection for that (DuckDB's httpfs extension cannot be installed everywhere), and an analyst's own session
does the same in two lines (README, "The log on S3"). The catalog records which log it was made for and is
remade when that changes (`epochstream migrate`).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa

from epochstream.layout import DataLayout, atomic_write_bytes, atomic_write_parquet
from epochstream.settings import Settings
from schemas.epoch import CORE_METRICS
from workers.catalog_errors import CatalogBusy, catalog_error  # noqa: F401 - CatalogBusy: for callers
from workers.fork_guard import no_fork
from workers.log_schema import DEAD_LETTERS, LOG_SCHEMAS
from workers.log_store import fsspec_options, log_store
from workers.quarantine import SEED as QUARANTINE_SEED
from workers.quarantine import check_log

CATALOG_VERSION = 6
_SEEDED: set[tuple[str, int]] = set()  # (S3 log URL, pid) whose seeds this process has seen
SEED = "_seed.parquet"  # leading underscore: pyarrow datasets skip it, DuckDB globs see it
QUARANTINE_COLUMNS = {
    "event_type": "VARCHAR", "name": "VARCHAR", "original": "VARCHAR", "path": "VARCHAR", "reason": "VARCHAR",
    "when": "TIMESTAMPTZ", "found_by": "VARCHAR", "partition": "BIGINT", "last_stream_id": "VARCHAR",
    "events": "BIGINT", "recovery": "VARCHAR", "recovered_events": "BIGINT", "lost_events": "BIGINT",
    "recovery_note": "VARCHAR",
}


def ensure_seeds(layout: DataLayout) -> None:
    """Zero-row files so every view's glob matches from the start (cheap when they exist)."""
    from workers.snapshots import RUNS_SCHEMA, snapshot_dir

    store = log_store(layout)
    if (layout.log_url, os.getpid()) not in _SEEDED:
        for name, schema in LOG_SCHEMAS.items():
            if not store.exists(layout.log_dir(name) / SEED):
                store.write_parquet(schema.empty_table(), layout.log_dir(name) / SEED, fsync=False)
        if not layout.log_is_local:  # nothing deletes a seed: one look per process (a drain comes here each job)
            _SEEDED.add((layout.log_url, os.getpid()))
    if not (snapshot_dir(layout) / SEED).exists():
        atomic_write_parquet(RUNS_SCHEMA.empty_table(), snapshot_dir(layout) / SEED, fsync=False)
    seed = layout.quarantine / QUARANTINE_SEED
    if not seed.exists():
        atomic_write_bytes(seed, b"", fsync=False)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _glob(layout: DataLayout, path: Path) -> str:
    """A path the catalog names relative to the data directory (see the module docstring)."""
    return _literal(layout.relative(path))


def _parquet(layout: DataLayout, event_type: str) -> str:
    return f"read_parquet({_literal(log_store(layout).sql_glob(layout, event_type))}, union_by_name = true)"


def register_s3(con: duckdb.DuckDBPyConnection, environ: dict[str, str] | None = None) -> None:
    """Let `con` read s3:// paths through s3fs, with the endpoint and credentials of the AWS variables."""
    try:
        import s3fs
    except ImportError:
        from epochstream.errors import ConfigurationError

        raise ConfigurationError("the log is on S3 (EPOCHSTREAM_LOG_URL) and SQL over it needs s3fs: "
                                 "pip install 'epochstream[s3]'") from None
    con.register_filesystem(s3fs.S3FileSystem(**fsspec_options(os.environ if environ is None else environ)))


def _session(con: duckdb.DuckDBPyConnection, layout: DataLayout) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET file_search_path = {_literal(str(layout.root.resolve()))}")
    if not layout.log_is_local:
        register_s3(con)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rewound(kind: str, key: str) -> str:
    """Rows of `{kind}_events` that count: the latest seq per key, minus what a resumed attempt rewound (rows
    older than an attempt's run_started, at or after the first key that attempt logged)."""
    return (f"WITH latest AS (SELECT * FROM {kind}_events QUALIFY row_number() OVER "
            f"(PARTITION BY run_id, {key} ORDER BY seq DESC, event_id) = 1), "
            f"cuts AS (SELECT s.run_id, s.seq AS start, min(e.{key}) AS cut FROM run_started AS s "
            f"JOIN {kind}_events AS e ON e.run_id = s.run_id AND e.seq > s.seq GROUP BY ALL) "
            f"SELECT l.* FROM latest AS l WHERE NOT EXISTS (SELECT 1 FROM cuts AS c WHERE c.run_id = l.run_id "
            f"AND l.seq < c.start AND l.{key} >= c.cut)")


def view_sql(layout: DataLayout) -> dict[str, str]:
    """The SELECT behind each view (pure: tested without touching a database)."""
    from workers.snapshots import snapshot_dir

    def events(event_type: str) -> str:
        return (f"SELECT * FROM {_parquet(layout, event_type)} "
                "QUALIFY row_number() OVER (PARTITION BY run_id, event_id ORDER BY stream_id, ingested_at) = 1")

    wide = ", ".join(f"map_extract(metrics, '{m}')[1] AS {_q(m)}" for m in CORE_METRICS)
    snapshots = _glob(layout, snapshot_dir(layout) / "*.parquet")
    columns = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in QUARANTINE_COLUMNS.items())
    return {
        # The newest snapshot only: a new one is a new file, so no query ever reads one being replaced. Newest
        # among those that had appeared when the query started (`workers.snapshots._publish` sets the mtimes):
        # read_parquet lists its files when the query is planned, so one that appears after would be chosen
        # by name and not be read.
        "runs": f"SELECT * EXCLUDE (filename) FROM read_parquet({snapshots}, union_by_name = true, filename = true) "
                f"WHERE filename = (SELECT max(filename) FROM read_blob({snapshots}) WHERE last_modified <= now()) "
                "ORDER BY coalesce(started_at, last_seen) DESC NULLS LAST, run_id DESC",
        "trends": "SELECT run_id, project, name, status, epochs, last_epoch, best_metric, best_mode, best_epoch, "
                  "best_value, final_loss, epochs_since_improvement, is_plateaued, is_overfitting, is_diverging, "
                  "should_stop, suspect_metrics, recommendation, recommendation_epoch, reason FROM runs",
        "run_started": f"SELECT * FROM ({events('run_started')})",
        "run_config": f"SELECT * FROM ({events('run_config')})",
        "run_finished": f"SELECT * FROM ({events('run_finished')})",
        "epoch_events": events("epoch"),
        "epochs": f"SELECT run_id, epoch, seq, event_id, ts, samples, {wide}, metrics "
                  f"FROM ({_rewound('epoch', 'epoch')})",
        "epoch_metrics": "SELECT run_id, epoch, seq, ts, m.key AS metric, m.value AS value "
                         "FROM epochs, unnest(map_entries(metrics)) AS t(m)",
        "step_events": events("step"),
        "steps": f"SELECT run_id, step, epoch, seq, event_id, ts, metrics FROM ({_rewound('step', 'step')})",
        "step_metrics": "SELECT run_id, step, epoch, seq, ts, m.key AS metric, m.value AS value "
                        "FROM steps, unnest(map_entries(metrics)) AS t(m)",
        "system": f"SELECT * FROM ({events('system')})",
        "system_gpus": "SELECT run_id, seq, ts, g.* FROM system, unnest(gpus) AS t(g)",
        "system_1m": "SELECT s.run_id, time_bucket(INTERVAL 1 minute, s.ts) AS minute, count(*) AS samples, "
                     "avg(s.cpu_percent) AS cpu_percent_mean, max(s.rss_mb) AS rss_mb_max, "
                     "avg(g.utilization_pct) AS gpu_util_mean, max(g.utilization_pct) AS gpu_util_max, "
                     "max(g.mem_allocated_mb) AS gpu_mem_allocated_max_mb "
                     "FROM system AS s LEFT JOIN system_gpus AS g ON g.run_id = s.run_id AND g.seq = s.seq "
                     "GROUP BY ALL",
        "dead_letters": f"SELECT * FROM {_parquet(layout, DEAD_LETTERS)} "
                        "QUALIFY row_number() OVER (PARTITION BY stream, stream_id ORDER BY dead_lettered_at) = 1",
        "quarantine": "SELECT event_type, original AS file, 'quarantine/' || event_type || '/' || path AS moved_to, "
                      "reason, \"when\" AS quarantined_at, found_by, \"partition\", last_stream_id, events, recovery, "
                      "recovered_events, lost_events, recovery_note "
                      f"FROM read_json({_glob(layout, layout.quarantine / '**' / '*.json')}, columns = {{{columns}}}, "
                      "format = 'newline_delimited') WHERE event_type IS NOT NULL ORDER BY quarantined_at",
    }


def _current(path: Path, log_url: str) -> bool:
    """Made by this version of the code, for this log (a catalog of a local log is remade for an S3 one)."""
    if not path.exists():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return False
    try:
        return con.execute("SELECT max(version), max(log_url) FROM epochstream_catalog").fetchone() == (
            CATALOG_VERSION, log_url)
    except duckdb.Error:
        return False
    finally:
        con.close()


def ensure_catalog(settings: Settings) -> Path:
    """Create (or upgrade) the catalog with a short-lived read-write connection."""
    layout = DataLayout.of(settings)
    ensure_seeds(layout)
    check_log(layout, "catalog")
    path = layout.catalog
    if _current(path, layout.log_url):
        return path
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        raise catalog_error(exc) from None
    try:
        _session(con, layout)
        for name, sql in view_sql(layout).items():
            con.execute(f"CREATE OR REPLACE VIEW {_q(name)} AS {sql}")
        con.execute("CREATE OR REPLACE TABLE epochstream_catalog AS SELECT ? AS version, ? AS log_url",
                    [CATALOG_VERSION, layout.log_url])
    finally:
        con.close()
    return path


def open_catalog(settings: Settings, read_only: bool = True, fresh: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the catalog (created first if missing). Read-only unless asked otherwise. `fresh`: take
    a new snapshot of the read model first if it changed since the newest (what `epochstream sql` does)."""
    layout = DataLayout.of(settings)
    path = layout.catalog
    if fresh:
        refresh_snapshot(settings)
    if not _current(path, layout.log_url):
        ensure_catalog(settings)
    con = duckdb.connect(str(path), read_only=read_only)
    _session(con, layout)
    return con


def refresh_snapshot(settings: Settings) -> Path | None:
    """A new snapshot of the read model if it changed; first, quarantine any segment that turned unreadable
    since the last look (so no view fails on it) and recover what the broker still holds of one."""
    from epochstream.readmodel.reader import ReadModelReader
    from workers.salvage import recover_pending
    from workers.snapshots import refresh

    layout = DataLayout.of(settings)
    ensure_seeds(layout)
    check_log(layout, "catalog")
    recover_pending(settings)
    with no_fork():  # a worker forks its work horses meanwhile: no connection of ours may cross a fork
        reader = ReadModelReader(settings.data_dir, settings.read_model_url)
        try:
            return refresh(layout, reader)
        finally:
            reader.close()


def query(settings: Settings, sql: str, params: list | None = None) -> pa.Table:
    con = open_catalog(settings, fresh=True)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()
