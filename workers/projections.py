"""Per-run projections, updated incrementally from each drained batch (and identically by rebuild).

Every projection is a function of the *set* of a run's events, never of the order or batching they arrived
in, which is what makes `rebuild(log)` equal the incremental result and redeliveries harmless:
- epoch history: deduplicated by `event_id`; if an epoch number was logged twice the later `seq` wins;
  ordered by epoch;
- system series: deduplicated by `event_id`, ordered by `seq`;
- summary: the newest `run_started` / `run_finished` (by seq), maxima of ts/seq, and flags derived from
  the history. `version` grows by one whenever anything of the run changed; a batch of pure duplicates
  changes nothing and writes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from epochstream.layout import DataLayout, atomic_write_bytes, atomic_write_parquet
from schemas.keys import partition_of
from schemas.read_models import RunSummary
from schemas.trends import EpochRow, best_epoch, default_metric, recommendation
from workers.arrow_ops import first_per_key

EPOCHS_SCHEMA = pa.schema([
    ("epoch", pa.int64()), ("seq", pa.int64()), ("event_id", pa.string()),
    ("ts", pa.timestamp("us", tz="UTC")), ("samples", pa.int64()),
    ("metrics", pa.map_(pa.string(), pa.float64())),
])
SYSTEM_COLUMNS = ["seq", "event_id", "ts", "cpu_percent", "rss_mb", "gpus"]
VOLATILE = {"version", "ingested_at"}  # what differs between two projections of the same events


def merge_epochs(existing: pa.Table | None, new: pa.Table) -> pa.Table:
    """Union, drop repeated event_ids, keep the latest seq per epoch, order by epoch."""
    new = new.select(EPOCHS_SCHEMA.names).cast(EPOCHS_SCHEMA)
    table = new if existing is None else pa.concat_tables([existing.select(EPOCHS_SCHEMA.names).cast(EPOCHS_SCHEMA),
                                                           new])
    return first_per_key(table.sort_by([("epoch", "ascending"), ("seq", "descending"), ("event_id", "ascending")]),
                         ["epoch"])


def merge_system(existing: pa.Table | None, new: pa.Table) -> pa.Table:
    """Union, drop repeated event_ids, order by seq."""
    new = new.select(SYSTEM_COLUMNS)
    table = new if existing is None else pa.concat_tables([existing.select(SYSTEM_COLUMNS).cast(new.schema), new])
    return first_per_key(table.sort_by([("seq", "ascending"), ("event_id", "ascending")]), ["event_id"])


def history_rows(table: pa.Table) -> list[EpochRow]:
    return [EpochRow(e, dict(m)) for e, m in zip(table.column("epoch").to_pylist(),
                                                   table.column("metrics").to_pylist(), strict=True)]


def read_summary(layout: DataLayout, run_id: str) -> RunSummary | None:
    try:
        return RunSummary.model_validate_json(layout.run_summary(run_id).read_bytes())
    except FileNotFoundError:
        return None


def _newest(table: pa.Table | None) -> dict[str, Any] | None:
    if table is None or table.num_rows == 0:
        return None
    return table.sort_by([("seq", "descending"), ("event_id", "descending")]).slice(0, 1).to_pylist()[0]


def _max(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def fold_summary(old: RunSummary | None, run_id: str, per_run: dict[str, pa.Table], epochs: pa.Table | None,
                 system_rows: int) -> dict[str, Any]:
    """The summary fields (without version/ingested_at) after applying one batch of the run's events."""
    out = (old or RunSummary(run_id=run_id)).model_dump(exclude=VOLATILE)
    started = _newest(per_run.get("run_started"))
    if started:
        out.update(project=started["project"], name=started["name"], config=json.loads(started["config"] or "{}"),
                   tags=started["tags"] or [], started_at=started["ts"], host=started["host"],
                   heartbeat_s=started["heartbeat_s"])
    finished = _newest(per_run.get("run_finished"))
    if finished:
        out.update(status=finished["status"], error=finished["error"], traceback=finished["traceback"],
                   exit_code=finished["exit_code"], finished_at=finished["ts"], duration_s=finished["duration_s"])
    stamps, seqs = [out["last_seen"]], [out["last_seq"]]
    for table in per_run.values():
        if table.num_rows:
            stamps.append(pc.max(table.column("ts")).as_py())
            seqs.append(pc.max(table.column("seq")).as_py())
    out["last_seen"], out["last_seq"] = _max(stamps), _max(seqs)
    history = history_rows(epochs) if epochs is not None else []
    metric = default_metric(history)
    best = best_epoch(history, metric, "min")
    out.update(epochs=len(history), last_epoch=history[-1].epoch if history else None, best_metric=metric,
               best_mode="min", best_epoch=best.epoch if best else None, best_value=best.value if best else None,
               final_loss=history[-1].metrics.get("train/loss") if history else None,
               trends=recommendation(history, metric, status=out["status"], error=out["error"]).model_dump())
    # Distinct events reflected in the projections: kept epochs, system samples, start and finish.
    out["events"] = len(history) + system_rows + (out["started_at"] is not None) + (out["finished_at"] is not None)
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return RunSummary.model_validate(a).model_dump_json() == RunSummary.model_validate(b).model_dump_json()


def project_run(layout: DataLayout, run_id: str, per_run: dict[str, pa.Table], now: datetime,
                min_version: int = 0) -> RunSummary | None:
    """Apply one run's slice of a batch; returns the new summary, or None if nothing changed."""
    epochs_path, system_path = layout.run_epochs(run_id), layout.run_system(run_id)
    epochs = pq.read_table(epochs_path) if epochs_path.exists() else None
    new_epochs = per_run.get("epoch")
    if new_epochs is not None and new_epochs.num_rows:
        merged = merge_epochs(epochs, new_epochs)
        if epochs is None or not merged.equals(epochs.cast(EPOCHS_SCHEMA)):
            atomic_write_parquet(merged, epochs_path)
        epochs = merged
    system = pq.read_table(system_path) if system_path.exists() else None
    new_system = per_run.get("system")
    if new_system is not None and new_system.num_rows:
        merged = merge_system(system, new_system)
        if system is None or merged.num_rows != system.num_rows:
            atomic_write_parquet(merged, system_path)
        system = merged
    old = read_summary(layout, run_id)
    fields = fold_summary(old, run_id, per_run, epochs, system.num_rows if system is not None else 0)
    if old is not None and _same(fields, old.model_dump(exclude=VOLATILE)):
        return None
    version = max((old.version if old else 0) + 1, min_version)
    summary = RunSummary.model_validate({**fields, "version": version, "ingested_at": now})
    atomic_write_bytes(layout.run_summary(run_id), summary.model_dump_json().encode())
    return summary


INDEX_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("project", pa.string()), ("name", pa.string()), ("status", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
    ("last_seen", pa.timestamp("us", tz="UTC")), ("heartbeat_s", pa.float64()), ("host", pa.string()),
    ("tags", pa.list_(pa.string())), ("config", pa.string()), ("error", pa.string()), ("exit_code", pa.int64()),
    ("duration_s", pa.float64()), ("epochs", pa.int64()), ("last_epoch", pa.int64()),
    ("best_metric", pa.string()), ("best_mode", pa.string()), ("best_epoch", pa.int64()),
    ("best_value", pa.float64()), ("final_loss", pa.float64()), ("events", pa.int64()), ("last_seq", pa.int64()),
    ("version", pa.int64()), ("ingested_at", pa.timestamp("us", tz="UTC")),
    ("epochs_since_improvement", pa.int64()), ("is_plateaued", pa.bool_()), ("is_overfitting", pa.bool_()),
    ("is_diverging", pa.bool_()), ("suspect_metrics", pa.string()), ("recommendation", pa.string()),
    ("recommendation_epoch", pa.int64()), ("reason", pa.string()),
])


def index_row(summary: RunSummary) -> dict[str, Any]:
    row = summary.model_dump(include=set(INDEX_SCHEMA.names))
    trends = summary.trends
    row.update(config=json.dumps(summary.config, sort_keys=True, default=str),
               epochs_since_improvement=trends.epochs_since_improvement, is_plateaued=trends.is_plateaued,
               is_overfitting=trends.is_overfitting, is_diverging=trends.is_diverging,
               suspect_metrics=json.dumps(trends.suspect_metrics, sort_keys=True),
               recommendation=trends.recommendation, recommendation_epoch=trends.recommendation_epoch,
               reason=trends.reason)
    return row


def _sort_newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r["started_at"] or r["last_seen"] or floor, r["run_id"]), reverse=True)


def write_index(layout: DataLayout, partition: int, changed: list[RunSummary]) -> None:
    """Replace the changed runs' rows in runs-<partition>.parquet (one writer per partition: the drain)."""
    if not changed:
        return
    path = layout.runs_index(partition)
    rows = {r["run_id"]: r for r in (pq.read_table(path).to_pylist() if path.exists() else [])}
    rows.update({s.run_id: index_row(s) for s in changed})
    atomic_write_parquet(pa.Table.from_pylist(_sort_newest_first(list(rows.values())), schema=INDEX_SCHEMA), path)


def split_by_run(tables: dict[str, pa.Table]) -> dict[str, dict[str, pa.Table]]:
    run_ids: set[str] = set()
    for table in tables.values():
        run_ids.update(table.column("run_id").to_pylist())
    return {run_id: {name: t.filter(pc.equal(t.column("run_id"), run_id)) for name, t in tables.items()}
            for run_id in sorted(run_ids)}


def update_runs(layout: DataLayout, tables: dict[str, pa.Table], partitions: int,
                now: datetime | None = None) -> list[str]:
    """Apply one drained batch to the projections of every run it touches; returns the runs that changed."""
    now = now or datetime.now(UTC)
    by_partition: dict[int, list[RunSummary]] = {}
    for run_id, per_run in split_by_run(tables).items():
        summary = project_run(layout, run_id, per_run, now)
        if summary is not None:
            by_partition.setdefault(partition_of(run_id, partitions), []).append(summary)
    for partition, changed in by_partition.items():
        write_index(layout, partition, changed)
    return sorted(s.run_id for changed in by_partition.values() for s in changed)
