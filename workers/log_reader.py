"""Reading the Parquet log back: every live segment of a type, each event once (by its run and event_id).

A segment compaction merged stays in the log under its name for a while (`workers.compaction`), marked
superseded by a hidden `.<name>.superseded` file: SQL views may still open it (and dedupe its rows against
the merged copy); everything reading the log from Python skips it. Files are found and read through the
log's store (`workers.log_store`: a local directory or S3), whose listing is a snapshot: a reader that misses
a segment just written sees it next time, and one that sees a segment twice counts its events once.
"""

from __future__ import annotations

from pathlib import PurePath

import pyarrow as pa
import pyarrow.compute as pc

from epochstream.layout import DataLayout
from workers.arrow_ops import first_per_key
from workers.log_schema import DEAD_LETTERS, LOG_SCHEMAS, conform
from workers.log_store import SUPERSEDED, log_store, superseded_marker

__all__ = ["SUPERSEDED", "count_by_id", "count_by_identity", "dedupe", "identity", "read_files", "read_log",
           "segments", "superseded_marker"]


def segments(layout: DataLayout, event_type: str, pattern: str = "seg-*.parquet") -> list[PurePath]:
    """The live segment files of a type (seeds, temporary and superseded files excluded), oldest name first."""
    return log_store(layout).live(event_type, pattern)


def identity(event_type: str) -> list[str]:
    """The columns that identify one logical row: (run_id, event_id), or the stream entry for dead letters.

    Never event_id alone: a row written before ids were checked against their run (or by a buggy producer)
    could otherwise hide another run's event wherever the log is de-duplicated (views, compaction)."""
    return ["stream", "stream_id"] if event_type == DEAD_LETTERS else ["run_id", "event_id"]


def dedupe(table: pa.Table, event_type: str) -> pa.Table:
    """One row per identity; the copy with the smallest (stream_id, ingested_at) wins, as in the views."""
    if table.num_rows == 0:
        return table
    key = identity(event_type)
    tiebreak = ["dead_lettered_at"] if event_type == DEAD_LETTERS else ["stream_id", "ingested_at"]
    return first_per_key(table.sort_by([(c, "ascending") for c in key + tiebreak]), key)


def read_files(layout: DataLayout, files: list[PurePath], event_type: str) -> pa.Table:
    schema = LOG_SCHEMAS[event_type]
    store = log_store(layout)
    tables = [conform(store.read_table(f), schema) for f in files]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def read_log(layout: DataLayout, event_type: str) -> pa.Table:
    """All events of a type, deduplicated."""
    return dedupe(read_files(layout, segments(layout, event_type), event_type), event_type)


def count_by_id(layout: DataLayout, event_type: str) -> dict[str, int]:
    """event_id -> physical copies in the log (tests and compaction reports)."""
    table = read_files(layout, segments(layout, event_type), event_type)
    counts = pc.value_counts(table.column(identity(event_type)[-1]))
    return {c["values"].as_py(): c["counts"].as_py() for c in counts}


def count_by_identity(layout: DataLayout, event_type: str) -> dict[tuple[str, str], int]:
    """(run_id, event_id) -> physical copies in the log."""
    table = read_files(layout, segments(layout, event_type), event_type)
    out: dict[tuple[str, str], int] = {}
    for key in zip(table.column("run_id").to_pylist(), table.column("event_id").to_pylist(), strict=True):
        out[key] = out.get(key, 0) + 1
    return out
