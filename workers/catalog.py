"""The DuckDB catalog `epochstream.duckdb`: views over the Parquet log and projections, no data of its own.

Views (every one counts each event once, by event_id, whatever the log physically holds):
- `runs`          one row per run (the projection index): status, timestamps, best epoch, flags;
- `trends`        the trend flags and recommendation of each run;
- `epochs`        wide: one row per (run, epoch), one column per core metric plus the full `metrics` map;
- `epoch_metrics` long: one row per (run, epoch, metric);
- `system`        one row per system sample; `system_gpus` one row per GPU per sample;
  `system_1m`     per-run one-minute rollups (mean CPU, max RSS, mean/max GPU utilisation and memory);
- `dead_letters`  every dead-lettered entry with its reason and original payload.
The file is written once by a short-lived connection and only read afterwards, so any number of processes
may open it read-only while workers run. Every glob always matches at least a zero-row `_seed.parquet`
with the right schema: a fresh data directory is queryable before the first event arrives.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from epochstream.errors import TransientError
from epochstream.layout import DataLayout, atomic_write_parquet
from epochstream.settings import Settings
from schemas.epoch import CORE_METRICS
from workers.log_schema import DEAD_LETTERS, LOG_SCHEMAS

CATALOG_VERSION = 1
SEED = "_seed.parquet"  # leading underscore: pyarrow datasets skip it, DuckDB globs see it


class CatalogBusy(TransientError):
    """Another process holds the catalog open for writing; try again in a moment."""


def ensure_seeds(layout: DataLayout) -> None:
    """Zero-row files so every view's glob matches from the start (cheap when they exist)."""
    from workers.projections import INDEX_SCHEMA  # late: projections imports trends, keep this module light

    targets = {layout.log_dir(name) / SEED: schema for name, schema in LOG_SCHEMAS.items()}
    targets[layout.index_dir / SEED] = INDEX_SCHEMA
    for path, schema in targets.items():
        if not path.exists():
            atomic_write_parquet(schema.empty_table(), path, fsync=False)


def _glob(path: Path) -> str:
    return "'" + str(path.resolve()).replace("'", "''") + "'"


def _parquet(directory: Path) -> str:
    return f"read_parquet({_glob(directory / '*.parquet')}, union_by_name = true)"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(layout: DataLayout) -> dict[str, str]:
    """The SELECT behind each view (pure: tested without touching a database)."""
    def events(event_type: str) -> str:
        return (f"SELECT * FROM {_parquet(layout.log_dir(event_type))} "
                "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY stream_id, ingested_at) = 1")

    wide = ", ".join(f"map_extract(metrics, '{m}')[1] AS {_q(m)}" for m in CORE_METRICS)
    return {
        "runs": f"SELECT * EXCLUDE (filename) FROM read_parquet({_glob(layout.index_dir / '*.parquet')}, "
                "union_by_name = true, filename = true) WHERE filename NOT LIKE '%/_seed.parquet' "
                "ORDER BY coalesce(started_at, last_seen) DESC NULLS LAST, run_id DESC",
        "trends": "SELECT run_id, project, name, status, epochs, last_epoch, best_metric, best_mode, best_epoch, "
                  "best_value, final_loss, epochs_since_improvement, is_plateaued, is_overfitting, is_diverging, "
                  "suspect_metrics, recommendation, recommendation_epoch, reason FROM runs",
        "epoch_events": events("epoch"),
        # The projection's rule: one row per (run, epoch), the latest seq wins.
        "epochs": f"SELECT run_id, epoch, seq, event_id, ts, samples, {wide}, metrics FROM epoch_events "
                  "QUALIFY row_number() OVER (PARTITION BY run_id, epoch ORDER BY seq DESC, event_id) = 1",
        "epoch_metrics": "SELECT run_id, epoch, seq, ts, m.key AS metric, m.value AS value "
                         "FROM epochs, unnest(map_entries(metrics)) AS t(m)",
        "system": f"SELECT * FROM ({events('system')})",
        "system_gpus": "SELECT run_id, seq, ts, g.* FROM system, unnest(gpus) AS t(g)",
        "system_1m": "SELECT s.run_id, time_bucket(INTERVAL 1 minute, s.ts) AS minute, count(*) AS samples, "
                     "avg(s.cpu_percent) AS cpu_percent_mean, max(s.rss_mb) AS rss_mb_max, "
                     "avg(g.utilization_pct) AS gpu_util_mean, max(g.utilization_pct) AS gpu_util_max, "
                     "max(g.mem_allocated_mb) AS gpu_mem_allocated_max_mb "
                     "FROM system AS s LEFT JOIN system_gpus AS g ON g.run_id = s.run_id AND g.seq = s.seq "
                     "GROUP BY ALL",
        "run_started": f"SELECT * FROM ({events('run_started')})",
        "run_finished": f"SELECT * FROM ({events('run_finished')})",
        "dead_letters": f"SELECT * FROM {_parquet(layout.log_dir(DEAD_LETTERS))} "
                        "QUALIFY row_number() OVER (PARTITION BY stream, stream_id ORDER BY dead_lettered_at) = 1",
    }


def _current(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return False
    try:
        return con.execute("SELECT max(version) FROM epochstream_catalog").fetchone()[0] == CATALOG_VERSION
    except duckdb.Error:
        return False
    finally:
        con.close()


def ensure_catalog(settings: Settings) -> Path:
    """Create (or upgrade) the catalog with a short-lived read-write connection."""
    layout = DataLayout(settings.data_dir)
    ensure_seeds(layout)
    path = layout.catalog
    if _current(path):
        return path
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        raise CatalogBusy(f"{path} is open for writing elsewhere: {exc}") from None
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, sql in view_sql(layout).items():
            con.execute(f"CREATE OR REPLACE VIEW {_q(name)} AS {sql}")
        con.execute("CREATE OR REPLACE TABLE epochstream_catalog AS SELECT ? AS version", [CATALOG_VERSION])
    finally:
        con.close()
    return path


def open_catalog(settings: Settings, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection to the catalog (created first if missing). Read-only unless asked otherwise."""
    path = DataLayout(settings.data_dir).catalog
    if not _current(path):
        ensure_catalog(settings)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


def query(settings: Settings, sql: str, params: list | None = None) -> pa.Table:
    con = open_catalog(settings)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()
