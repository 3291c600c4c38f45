"""Bringing a read model that is behind the log up to date, from the log alone.

Each segment a drain writes records its partition and the newest stream id it holds. When a drain takes a
partition, any of its segments whose newest id is above the tracking record's position holds events the
read model does not have (a database restored from a backup, a commit lost with its disk): those rows are
applied before anything new is read. Segments merged by compaction are only ever older ones, so they are
left out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq

from epochstream.layout import DataLayout
from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.batch import stream_key
from workers.log_events import events_of
from workers.log_schema import SCHEMAS, conform

log = logging.getLogger("epochstream.catch_up")
SEGMENT_PARTITION, SEGMENT_LAST_ID = b"epochstream.partition", b"epochstream.last_stream_id"


def segments_ahead(layout: DataLayout, partition: int, position: str) -> list[tuple[str, Path]]:
    """(event type, path) of the partition's drain segments holding entries above `position`."""
    applied = stream_key(position)
    out = []
    for event_type in SCHEMAS:
        directory = layout.log_dir(event_type)
        if not directory.exists():
            continue
        for path in directory.glob(f"seg-*-p{partition}-*.parquet"):
            if "-compacted-" in path.name:
                continue
            try:
                meta = pq.read_schema(path).metadata or {}
            except (OSError, ValueError):
                continue  # unreadable: issue-12's quarantine deals with it; the broker still has its entries
            last = meta.get(SEGMENT_LAST_ID)
            if last is not None and int(meta.get(SEGMENT_PARTITION, b"-1")) == partition \
                    and stream_key(last.decode()) > applied:
                out.append((event_type, path))
    return sorted(out, key=lambda item: item[1].name)


def catch_up(writer: ReadModelWriter, layout: DataLayout, partition: int, fence: int) -> int:
    """Apply what the log holds above the tracking record's position; returns the events applied."""
    position = writer.tracking(partition).position
    ahead = segments_ahead(layout, partition, position)
    applied = 0
    for event_type, path in ahead:
        table = conform(pq.read_table(path), SCHEMAS[event_type])
        for chunk in events_of(event_type, table):
            newer = [e for e in chunk if stream_key(e[0]) > stream_key(position)]
            if newer:
                writer.apply(partition, newer, fence, newer[0][2])
                applied += len(newer)
    if applied:
        log.warning("partition %d: the read model was behind the log; applied %d events from %d segments",
                    partition, applied, len(ahead))
    return applied
