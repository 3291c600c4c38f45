"""Per-run projections, updated incrementally from each drained batch (and identically by rebuild).

Epoch history: deduplicated by `event_id`; if an epoch number was logged twice the later `seq` wins;
ordered by epoch. The summary is a fold over a run's events.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from epochstream.layout import DataLayout, atomic_write_bytes, atomic_write_parquet
from workers.trends import EpochRow, best_epoch, default_metric

EPOCHS_SCHEMA = pa.schema([
    ("epoch", pa.int64()), ("seq", pa.int64()), ("event_id", pa.string()),
    ("ts", pa.timestamp("us", tz="UTC")), ("samples", pa.int64()),
    ("metrics", pa.map_(pa.string(), pa.float64())),
])


def merge_epochs(existing: pa.Table | None, new: pa.Table) -> pa.Table:
    """Union, drop repeated event_ids, keep the latest seq per epoch, order by epoch."""
    new = new.select(EPOCHS_SCHEMA.names).cast(EPOCHS_SCHEMA)
    table = new if existing is None else pa.concat_tables([existing.cast(EPOCHS_SCHEMA), new])
    rows = table.sort_by([("epoch", "ascending"), ("seq", "descending")]).to_pylist()
    seen_ids: set[str] = set()
    seen_epochs: set[int] = set()
    kept = []
    for row in rows:
        if row["event_id"] in seen_ids or row["epoch"] in seen_epochs:
            seen_ids.add(row["event_id"])
            continue
        seen_ids.add(row["event_id"])
        seen_epochs.add(row["epoch"])
        kept.append(row)
    return pa.Table.from_pylist(kept, schema=EPOCHS_SCHEMA)


def history_rows(table: pa.Table) -> list[EpochRow]:
    return [EpochRow(e, dict(m)) for e, m in zip(table.column("epoch").to_pylist(),
                                                   table.column("metrics").to_pylist(), strict=True)]


def _json_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def read_summary(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def fold_summary(summary: dict[str, Any], run_id: str, tables: dict[str, pa.Table],
                 history: list[EpochRow]) -> dict[str, Any]:
    out = dict(summary)
    out["run_id"] = run_id
    out.setdefault("status", "running")
    last_seen = out.get("last_seen")
    for name, table in tables.items():
        if table.num_rows == 0:
            continue
        newest = pc.max(table.column("ts")).as_py()
        if last_seen is None or _iso(newest) > last_seen:
            last_seen = _iso(newest)
        if name == "run_started":
            row = table.to_pylist()[-1]
            out.update(project=row["project"], name=row["name"], config=json.loads(row["config"] or "{}"),
                       tags=row["tags"], started_at=_iso(row["ts"]), host=row["host"])
        elif name == "run_finished":
            row = table.to_pylist()[-1]
            out.update(status=row["status"], error=row["error"], traceback=row["traceback"],
                       exit_code=row["exit_code"], finished_at=_iso(row["ts"]), duration_s=row["duration_s"])
    out["last_seen"] = last_seen
    metric = default_metric(history)
    best = best_epoch(history, metric, "min")
    out["epochs"] = len(history)
    out["best_metric"] = metric
    out["best_epoch"] = best.epoch if best else None
    out["best_value"] = _json_float(best.value) if best else None
    out["final_loss"] = _json_float(history[-1].metrics.get("train/loss")) if history else None
    out["version"] = int(out.get("version", 0)) + 1
    return out


def update_runs(layout: DataLayout, tables: dict[str, pa.Table]) -> list[str]:
    """Apply one drained batch to the projections of every run it touches; returns those run ids."""
    run_ids: set[str] = set()
    for table in tables.values():
        run_ids.update(table.column("run_id").to_pylist())
    for run_id in sorted(run_ids):
        per_run = {name: t.filter(pc.equal(t.column("run_id"), run_id)) for name, t in tables.items()}
        epochs_path = layout.run_epochs(run_id)
        existing = pq.read_table(epochs_path) if epochs_path.exists() else None
        epochs = existing
        if "epoch" in per_run and per_run["epoch"].num_rows:
            epochs = merge_epochs(existing, per_run["epoch"])
            atomic_write_parquet(epochs, epochs_path)
        history = history_rows(epochs) if epochs is not None else []
        summary = fold_summary(read_summary(layout.run_summary(run_id)), run_id, per_run, history)
        atomic_write_bytes(layout.run_summary(run_id), json.dumps(summary, sort_keys=True).encode())
    return sorted(run_ids)
