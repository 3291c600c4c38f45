"""What a log segment says about itself: its partition and newest stream id (stamped in its Parquet
metadata by the drain, by compaction and by recovery), and the time and partition in its name (no I/O but
`stamps`, through the log store).

    seg-<utc>-p<partition>-<id>-s<newest stream id>.parquet   one drained batch of one partition (before
                                                           names carried the id: seg-<utc>-p<partition>-<id>)
    seg-<oldest part's utc>-p<partition>-<id>-compacted-<id>.parquet   compaction of one partition's parts
    seg-<utc>-p<partition>-recovered-<id>.parquet          events recovered from the broker (`workers.salvage`)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING

import pyarrow as pa

from epochstream.readmodel.batch import stream_key

if TYPE_CHECKING:
    from workers.log_store import LogStore

SEGMENT_PARTITION, SEGMENT_LAST_ID = b"epochstream.partition", b"epochstream.last_stream_id"
_NAME = re.compile(r"^seg-(?P<stamp>\d{8}T\d{6,12})Z?-p(?P<partition>\d+)-")
_DRAINED = re.compile(r"^seg-\d{8}T\d{6,12}Z-p\d+-[0-9a-f]+-s(?P<millis>\d+)\.(?P<seq>\d+)\.parquet$")


def segment_name(now: datetime, partition: int, last_id: str) -> str:
    """A drained batch's segment: the newest stream id in the name lets a drain taking a partition see which
    segments are ahead of its tracking record without opening any."""
    return (f"seg-{now.strftime('%Y%m%dT%H%M%S%fZ')}-p{partition}-{uuid.uuid4().hex[:8]}-s"
            f"{last_id.replace('-', '.')}.parquet")


def last_id_in_name(name: str) -> str | None:
    """The newest stream id a drained segment's name records; None for other names (older drained ones,
    compacted and recovered segments: their stamps tell)."""
    match = _DRAINED.match(name)
    return None if match is None else f"{match['millis']}-{match['seq']}"


def stamp(table: pa.Table, partition: int, last_id: str) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), SEGMENT_PARTITION: str(partition),
                                          SEGMENT_LAST_ID: last_id})


def stamps_of(metadata: dict | None) -> tuple[int | None, str | None]:
    meta = metadata or {}
    partition, last = meta.get(SEGMENT_PARTITION), meta.get(SEGMENT_LAST_ID)
    return (None if partition is None else int(partition)), (None if last is None else last.decode())


def stamps(path: PurePath, store: LogStore) -> tuple[int | None, str | None]:
    """(partition, newest stream id) stamped in a segment; (None, None) if it has none. Raises what pyarrow
    raises for a file it cannot read (and `LogStoreUnavailable` for a store that cannot be reached)."""
    return stamps_of(store.read_schema(path).metadata)


def partition_in_name(name: str) -> int | None:
    match = _NAME.match(name)
    return None if match is None else int(match["partition"])


def written_us(name: str) -> int | None:
    """When a segment was written, from its name (microseconds since the Unix epoch), or None."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        stamp_text = match["stamp"]
        when = datetime.strptime(stamp_text[:15] + "." + (stamp_text[15:] or "0"), "%Y%m%dT%H%M%S.%f")
    except ValueError:
        return None
    return int(when.replace(tzinfo=UTC).timestamp() * 1_000_000)


def is_compacted(name: str) -> bool:
    return "-compacted-" in name


def newest_id(ids: Iterable[str]) -> str | None:
    return max(ids, key=stream_key, default=None)
