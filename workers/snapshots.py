"""Snapshots of the read model's runs for SQL: immutable Parquet files with unique names.

DuckDB cannot attach the SQLite read model here (its sqlite extension is not installable offline), and a
view must never read a file while it is being replaced. So the `runs` and `trends` views read the newest
`snapshots/runs-<time>-<id>.parquet`; a new snapshot is a new file (written, fsynced, renamed), and old ones
are deleted only after `KEEP_S`, long after any query that chose them has finished. `epochstream sql`
takes a fresh snapshot first when the read model changed since the newest one; the scheduler does it
every so often (`refresh_due`), so an analyst's own DuckDB session sees data at most that old.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from epochstream.layout import DataLayout, atomic_write_parquet, fsync_dir
from epochstream.readmodel.judged import trends
from epochstream.readmodel.reader import ReadModelReader
from epochstream.readmodel.values import stored_float
from schemas.trend_rules import EpochRow

KEEP_S = 600.0  # an old snapshot outlives any query that started on it by far
STATE_KEY = b"epochstream.read_model_state"
TS = pa.timestamp("us", tz="UTC")

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("project", pa.string()), ("name", pa.string()), ("status", pa.string()),
    ("started_at", TS), ("finished_at", TS), ("last_seen", TS), ("heartbeat_s", pa.float64()), ("host", pa.string()),
    ("tags", pa.list_(pa.string())), ("config", pa.string()), ("error", pa.string()), ("exit_code", pa.int64()),
    ("duration_s", pa.float64()), ("epochs", pa.int64()), ("last_epoch", pa.int64()), ("steps", pa.int64()),
    ("last_step", pa.int64()), ("best_metric", pa.string()), ("best_mode", pa.string()), ("best_epoch", pa.int64()),
    ("best_value", pa.float64()), ("final_loss", pa.float64()), ("events", pa.int64()), ("last_seq", pa.int64()),
    ("attempts", pa.int64()), ("dropped", pa.int64()), ("clock_ahead_s", pa.float64()), ("version", pa.int64()),
    ("ingested_at", TS),
    ("epochs_since_improvement", pa.int64()), ("is_plateaued", pa.bool_()), ("is_overfitting", pa.bool_()),
    ("is_diverging", pa.bool_()), ("should_stop", pa.bool_()), ("suspect_metrics", pa.string()),
    ("recommendation", pa.string()), ("recommendation_epoch", pa.int64()), ("reason", pa.string()),
])


def snapshot_dir(layout: DataLayout) -> Path:
    return layout.root / "snapshots"


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _row(summary: dict[str, Any], config: str | None, state: dict[str, Any] | None,
         reader: ReadModelReader) -> dict[str, Any]:
    history = lambda: [EpochRow(e.epoch, e.metrics) for e in reader.epochs(summary["run_id"])]  # noqa: E731
    flags = trends(summary, state, history=history)
    return {
        **{k: summary.get(k) for k in ("run_id", "project", "name", "status", "heartbeat_s", "host", "tags", "error",
                                       "exit_code", "duration_s", "epochs", "last_epoch", "steps", "last_step",
                                       "best_metric", "best_mode", "best_epoch", "events", "last_seq", "dropped",
                                       "clock_ahead_s", "version")},
        "started_at": _when(summary.get("started_at")), "finished_at": _when(summary.get("finished_at")),
        "last_seen": _when(summary.get("last_seen")), "ingested_at": _when(summary.get("ingested_at")),
        "config": config or "{}", "best_value": stored_float(summary.get("best_value")),
        "final_loss": stored_float(summary.get("final_loss")), "attempts": len(summary.get("attempts") or []),
        "suspect_metrics": orjson.dumps(flags.get("suspect_metrics") or {}, option=orjson.OPT_SORT_KEYS).decode(),
        **{k: flags.get(k) for k in ("epochs_since_improvement", "is_plateaued", "is_overfitting", "is_diverging",
                                      "should_stop", "recommendation", "recommendation_epoch", "reason")},
    }


def state_of(reader: ReadModelReader) -> str:
    """Changes whenever the read model does: its generation and how many batches each partition applied."""
    return f"{reader.generation()}/" + ",".join(f"{p}:{b}" for p, _, _, b in reader.tracking())


def newest(layout: DataLayout) -> Path | None:
    files = sorted(snapshot_dir(layout).glob("runs-*.parquet"))
    return files[-1] if files else None


def is_current(layout: DataLayout, reader: ReadModelReader) -> bool:
    path = newest(layout)
    if path is None:
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return False
    return meta.get(STATE_KEY, b"").decode() == state_of(reader)


def take(layout: DataLayout, reader: ReadModelReader) -> Path:
    """Write a new snapshot of every run; returns its path. Old ones past KEEP_S are removed."""
    state = state_of(reader)
    rows = [_row(summary, config, state, reader) for summary, config, state in reader.all_runs()]
    table = pa.Table.from_pylist(rows, schema=RUNS_SCHEMA).replace_schema_metadata({STATE_KEY: state.encode()})
    name = f"runs-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.parquet"
    path = snapshot_dir(layout) / name
    _publish(table, path)
    _prune(layout, keep=path)
    return path


FAR_AHEAD_NS = 10 * 365 * 86400 * 10**9


def _publish(table: pa.Table, path: Path) -> None:
    """Write `path` durably, with an mtime that says when it appeared under its name.

    The `runs` view reads the newest snapshot whose mtime is not after the query's start (`now()`): one
    that existed when the query listed the files. Choosing by name alone picked a file that appeared after
    the listing, so the query read none (a count of 0). So the file waits under a hidden name with an mtime
    far ahead (never chosen, even in the instant after the rename), and gets the time just after its rename
    (explicitly: the kernel's own file times run a few ms behind the clock `now()` reads)."""
    pending = path.with_name(f".{path.name}.pending")
    atomic_write_parquet(table, pending, fsync=True)
    ahead = time.time_ns() + FAR_AHEAD_NS
    os.utime(pending, ns=(ahead, ahead))
    os.replace(pending, path)
    appeared = time.time_ns()
    os.utime(path, ns=(appeared, appeared))
    fsync_dir(path.parent)


def _prune(layout: DataLayout, keep: Path) -> None:
    cutoff = time.time() - KEEP_S
    for old in snapshot_dir(layout).glob("runs-*.parquet"):
        if old != keep:
            with contextlib.suppress(FileNotFoundError):
                if old.stat().st_mtime < cutoff:
                    old.unlink()


def refresh(layout: DataLayout, reader: ReadModelReader) -> Path | None:
    """A new snapshot if the read model changed since the newest one; None when it is current."""
    if reader.generation() is None or is_current(layout, reader):
        return None
    return take(layout, reader)
