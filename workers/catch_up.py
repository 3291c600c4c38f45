"""Bringing a read model that is behind the log up to date, from the log alone.

Each segment a drain writes records its partition and the newest stream id it holds. When a drain takes a
partition, any of its segments whose newest id is above the tracking record's position holds events the
read model does not have (a database restored from a backup, a commit lost with its disk): those rows are
applied before anything new is read. Segments merged by compaction are only ever older ones, so they are
left out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from epochstream.layout import DataLayout
from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.batch import stream_key
from workers.log_events import events_of
from workers.log_schema import SCHEMAS, conform

log = logging.getLogger("epochstream.catch_up")
SEGMENT_PARTITION, SEGMENT_LAST_ID = b"epochstream.partition", b"epochstream.last_stream_id"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MARGIN_S = 600  # clocks of worker hosts may differ this much; a segment older than its tracking record is in


def segment_name(now: datetime, partition: int, last_id: str) -> str:
    """`seg-<utc>-p<partition>-<random>-s<newest stream id>.parquet`: the newest id in the name lets a drain
    taking a partition see which segments are ahead of its tracking record without opening any."""
    return (f"seg-{now.strftime('%Y%m%dT%H%M%S%fZ')}-p{partition}-{uuid.uuid4().hex[:8]}-s"
            f"{last_id.replace('-', '.')}.parquet")


def name_last_id(name: str) -> str | None:
    """The newest stream id a segment's name records (None: a name from before names carried it)."""
    stem = name.removesuffix(".parquet")
    _, marker, last = stem.rpartition("-s")
    if not marker or "." not in last:
        return None
    millis, _, seq = last.partition(".")
    return f"{millis}-{seq}" if millis.isdigit() and seq.isdigit() else None


def segment_time_us(name: str) -> int | None:
    """The time a drain wrote a segment, from its name (`seg-<utc>-p<partition>-...`)."""
    try:
        stamp = datetime.strptime(name[4:25], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return (stamp - EPOCH) // timedelta(microseconds=1)  # exact: a float timestamp loses the last digit


def segments_ahead(layout: DataLayout, partition: int, position: str,
                   since_us: int | None = None) -> list[tuple[str, Path]]:
    """(event type, path) of the partition's drain segments holding entries above `position`. A name that
    carries its newest id decides alone; of older names, with `since_us` (when the tracking record was last
    written), only those written after it minus a margin are opened. No segment behind is ever opened."""
    applied = stream_key(position)
    floor = None if since_us is None else since_us - MARGIN_S * 1_000_000
    out = []
    for event_type in SCHEMAS:
        directory = layout.log_dir(event_type)
        if not directory.exists():
            continue
        for path in directory.glob(f"seg-*-p{partition}-*.parquet"):
            if "-compacted-" in path.name:
                continue
            named = name_last_id(path.name)
            if named is not None and stream_key(named) <= applied:
                continue  # the common case, decided by the name alone
            written = segment_time_us(path.name)
            if named is None and floor is not None and written is not None and written < floor:
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
    position, updated_us = writer.tracking_record(partition)
    ahead = segments_ahead(layout, partition, position, updated_us)
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
