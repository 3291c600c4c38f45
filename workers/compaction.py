"""Compaction: merge a type's small log segments into one, deduplicated, without changing any query result.

Safe next to running drains: drains only ever add new segment files, and compaction works on a snapshot
of the files listed when it starts (only those older than `min_age_s`). The merged file is renamed into
place *before* the inputs are deleted, so a reader sees every event at all times; in between it may see
an event twice, which every view and projection reader dedupes by (run_id, event_id) anyway.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pyarrow as pa

from epochstream.layout import DataLayout, atomic_write_parquet
from epochstream.settings import Settings
from workers.log_reader import dedupe, read_files, segments
from workers.log_schema import LOG_SCHEMAS

SMALL_BYTES = 64 * 1024 * 1024  # segments at or above this size are left alone
SORT_KEYS = {"dead_letters": ["stream", "stream_id"]}


@dataclass
class CompactResult:
    event_type: str
    files_in: int = 0
    rows_in: int = 0
    rows_out: int = 0


def compact_type(layout: DataLayout, event_type: str, min_age_s: float = 0.0) -> CompactResult:
    result = CompactResult(event_type)
    cutoff = time.time() - min_age_s
    files = [f for f in segments(layout, event_type)
             if f.stat().st_size < SMALL_BYTES and f.stat().st_mtime <= cutoff]
    if len(files) < 2:
        return result
    table = read_files(files, event_type)
    merged = dedupe(table, event_type)
    # Rows of one run side by side, in seq order: the columns compress far better that way.
    keys = SORT_KEYS.get(event_type, ["run_id", "seq", "event_id"])
    merged = merged.sort_by([(k, "ascending") for k in keys])
    # The new name sorts where the oldest input sorted, so "oldest name first" still means oldest data.
    name = files[0].name.removesuffix(".parquet").split("-compacted")[0]
    target = files[0].with_name(f"{name}-compacted-{uuid.uuid4().hex[:8]}.parquet")
    atomic_write_parquet(merged, target, **_options(merged.schema))
    for f in files:
        f.unlink(missing_ok=True)
    result.files_in, result.rows_in, result.rows_out = len(files), table.num_rows, merged.num_rows
    return result


def _options(schema: pa.Schema) -> dict:
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    return {"compression": "zstd", "compression_level": 9, "use_byte_stream_split": floats or False,
            "use_dictionary": [f.name for f in schema if pa.types.is_string(f.type)]}


def compact(settings: Settings, event_types: list[str] | None = None, min_age_s: float = 0.0) -> list[CompactResult]:
    layout = DataLayout(settings.data_dir)
    return [compact_type(layout, name, min_age_s) for name in (event_types or list(LOG_SCHEMAS))]
