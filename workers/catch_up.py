"""Bringing a read model that is behind the log up to date, from the log alone.

Each segment a drain writes records its partition and the newest stream id it holds, and so does each
segment compaction merges from one partition's parts (`workers.compaction`). When a drain takes a
partition, any of its segments whose newest id is above the tracking record's position holds events the
read model does not have (a database restored from a backup, a commit lost with its disk): those rows are
applied before anything new is read. Drained segments are only opened when their name says they were
written after the tracking record minus a margin; compacted ones are few and carry their parts' oldest
time in their name, so their stamps are always read. A segment that cannot be read is quarantined.
"""

from __future__ import annotations

import logging
from pathlib import PurePath

from epochstream.layout import DataLayout
from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.batch import stream_key
from workers.log_events import events_of
from workers.log_reader import segments
from workers.log_schema import SCHEMAS, conform
from workers.log_store import log_store
from workers.quarantine import damage_of, quarantine, read_checked
from workers.segment_meta import (
    SEGMENT_LAST_ID,
    SEGMENT_PARTITION,
    is_compacted,
    last_id_in_name,
    stamps,
    written_us,
)

__all__ = ["SEGMENT_LAST_ID", "SEGMENT_PARTITION", "catch_up", "segments_ahead"]
log = logging.getLogger("epochstream.catch_up")


MARGIN_S = 600  # clocks of worker hosts may differ this much; a segment older than its tracking record is in


def segments_ahead(layout: DataLayout, partition: int, position: str,
                   since_us: int | None = None) -> list[tuple[str, PurePath]]:
    """(event type, path) of the partition's drain segments holding entries above `position`. A name that
    carries its newest id decides alone; of older names, with `since_us` (when the tracking record was last
    written), only those written after it minus a margin are opened. No segment behind is ever opened."""
    applied = stream_key(position)
    floor = None if since_us is None else since_us - MARGIN_S * 1_000_000
    out = []
    store = log_store(layout)
    for event_type in SCHEMAS:
        for path in segments(layout, event_type, f"seg-*-p{partition}-*.parquet"):
            named = last_id_in_name(path.name)
            if named is not None and stream_key(named) <= applied:
                continue  # the common case, decided by the name alone
            written = written_us(path.name)
            if named is None and floor is not None and written is not None and written < floor \
                    and not is_compacted(path.name):
                continue
            try:
                stamped_partition, last = stamps(path, store)
            except FileNotFoundError:
                continue
            except Exception:  # noqa: BLE001 - damage is quarantined; anything else is not ours to judge
                reason = damage_of(layout, path)
                if reason is not None:
                    quarantine(layout, event_type, path, reason, "catch-up")
                continue
            if last is not None and stamped_partition == partition and stream_key(last) > applied:
                out.append((event_type, path))
    return sorted(out, key=lambda item: item[1].name)


def catch_up(writer: ReadModelWriter, layout: DataLayout, partition: int, fence: int) -> int:
    """Apply what the log holds above the tracking record's position; returns the events applied."""
    position, updated_us = writer.tracking_record(partition)
    ahead = segments_ahead(layout, partition, position, updated_us)
    applied = 0
    for event_type, path in ahead:
        raw = read_checked(layout, event_type, path, "catch-up")
        if raw is None:
            continue
        table = conform(raw, SCHEMAS[event_type])
        for chunk in events_of(event_type, table):
            newer = [e for e in chunk if stream_key(e[0]) > stream_key(position)]
            if newer:
                writer.apply(partition, newer, fence, newer[0][2])
                applied += len(newer)
    if applied:
        log.warning("partition %d: the read model was behind the log; applied %d events from %d segments",
                    partition, applied, len(ahead))
    return applied
