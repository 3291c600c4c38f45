"""Compaction: merge each partition's small log segments of a type into one, without changing any result.

Safe at any time:
- one compaction (or rebuild) at a time per data directory: the maintenance lock (`workers.maintenance_lock`);
  what a crashed one left is removed first (`workers.leftovers`);
- drains only ever add new segment files; compaction works on the files listed when it starts (only those
  older than `min_age_s`);
- the merged file is written durably (local: fsync and rename; S3: one PUT) *before* any part goes, and a
  part is not deleted at once: it is marked
  superseded (`.<name>.superseded`) and deleted by a compaction at least `keep_s` later. A SQL query lists a
  view's files when it is planned and opens them afterwards, so deleting a part at once failed queries with
  "Cannot open file"; meanwhile views see its events twice and count them once (they dedupe by (run_id, event_id)),
  and every Python reader of the log skips superseded parts (`workers.log_reader.segments`);
- per partition, so a merged segment is stamped like a drained one: its partition and the newest stream id
  of its parts (what catch-up needs to find what the read model lacks);
- a part that cannot be read is quarantined (`workers.quarantine`), not merged, and the rest goes on.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import PurePath

import pyarrow as pa

from epochstream.faults import crash_point
from epochstream.layout import DataLayout
from epochstream.settings import Settings
from workers.leftovers import clean_leftovers
from workers.log_reader import SUPERSEDED, dedupe, superseded_marker
from workers.log_schema import LOG_SCHEMAS, SCHEMAS, conform
from workers.log_store import LogStore, log_store
from workers.maintenance_lock import maintenance_lock, shared_lock_for
from workers.quarantine import read_checked
from workers.segment_meta import newest_id, partition_in_name, stamp, stamps_of

SMALL_BYTES = 64 * 1024 * 1024  # segments at or above this size are left alone
KEEP_S = 600.0  # a superseded part outlives any query that listed it by far (as snapshots do)
SORT_KEYS = {"dead_letters": ["stream", "stream_id"]}


@dataclass
class CompactResult:
    event_type: str
    files_in: int = 0
    rows_in: int = 0
    rows_out: int = 0
    files_out: int = 0
    removed: int = 0  # superseded parts deleted (their grace period over)
    quarantined: list[str] = field(default_factory=list)


def remove_superseded(store: LogStore, event_type: str, keep_s: float) -> int:
    """Delete the parts marked superseded at least `keep_s` ago (then their markers)."""
    removed = 0
    now = time.time()
    for marker in store.markers(event_type):
        if now - marker.mtime < keep_s:
            continue
        if store.delete(marker.path.with_name(marker.name[1:-len(SUPERSEDED)])):
            removed += 1
        store.delete(marker.path)
    return removed


def _merge(store: LogStore, event_type: str, partition: int | None, parts: list[tuple[PurePath, pa.Table]],
           result: CompactResult) -> None:
    schema = LOG_SCHEMAS[event_type]
    tables = [conform(table, schema) for _, table in parts]
    lasts = []
    for _, table in parts:
        last = stamps_of(table.schema.metadata)[1]
        if last is None and table.num_rows:
            last = newest_id(table.column("stream_id").to_pylist())
        if last is not None:
            lasts.append(last)
    combined = pa.concat_tables(tables)
    merged = dedupe(combined, event_type)
    # Rows of one run side by side, in seq order: the columns compress far better that way.
    keys = SORT_KEYS.get(event_type, ["run_id", "seq", "event_id"])
    merged = merged.sort_by([(k, "ascending") for k in keys])
    if event_type in SCHEMAS and partition is not None and lasts:
        merged = stamp(merged, partition, newest_id(lasts))
    # The new name sorts where the oldest input sorted, so "oldest name first" still means oldest data.
    first = parts[0][0]
    name = first.name.removesuffix(".parquet").split("-compacted")[0]
    store.write_parquet(merged, first.with_name(f"{name}-compacted-{uuid.uuid4().hex[:8]}.parquet"),
                        **parquet_options(merged.schema))
    crash_point("compaction_after_merge")  # a kill here leaves every event twice: views and readers dedupe
    for path, _ in parts:
        store.write_marker(superseded_marker(path))
    store.sync(first.parent)
    result.files_in += len(parts)
    result.files_out += 1
    result.rows_in += combined.num_rows
    result.rows_out += merged.num_rows


def compact_type(layout: DataLayout, event_type: str, min_age_s: float = 0.0, keep_s: float = KEEP_S) -> CompactResult:
    result = CompactResult(event_type)
    store = log_store(layout)
    cutoff = time.time() - min_age_s
    groups: dict[int | None, list[tuple[PurePath, pa.Table]]] = {}
    gone = store.superseded_names(event_type)  # only a compaction (this one, under the lock) writes markers
    listed = store.files(event_type)
    for file in listed:
        if file.name in gone or file.size >= SMALL_BYTES or file.mtime > cutoff:
            continue
        path = file.path
        table = read_checked(layout, event_type, path, "compaction")
        if table is None:
            if not store.exists(path):
                result.quarantined.append(path.name)
            continue
        partition = stamps_of(table.schema.metadata)[0]
        groups.setdefault(partition if partition is not None else partition_in_name(path.name), []).append(
            (path, table))
    for partition, parts in groups.items():
        if len(parts) >= 2:
            _merge(store, event_type, partition, parts, result)
    result.removed = remove_superseded(store, event_type, keep_s)
    return result


def parquet_options(schema: pa.Schema) -> dict:
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    return {"compression": "zstd", "compression_level": 9, "use_byte_stream_split": floats or False,
            "use_dictionary": [f.name for f in schema if pa.types.is_string(f.type)]}


def compact(settings: Settings, event_types: list[str] | None = None, min_age_s: float = 0.0,
            keep_s: float = KEEP_S, wait_s: float = 0.0) -> list[CompactResult]:
    """Compact every type (or those named) under the maintenance lock (waiting up to `wait_s` for it, else
    `MaintenanceBusy`); then recover what it had to quarantine, where the broker still has it."""
    from workers.salvage import recover_pending

    layout = DataLayout.of(settings)
    with maintenance_lock(layout, "compact", wait_s, shared_lock_for(settings)):
        clean_leftovers(layout, read_model_url=settings.read_model_url)
        results = [compact_type(layout, name, min_age_s, keep_s) for name in (event_types or list(LOG_SCHEMAS))]
    recover_pending(settings)
    return results
