"""Recovering a quarantined segment's events from the broker, and saying exactly what could not be.

A drained entry stays in its partition's stream until the scheduler trims below what every group still
needs, so for a while after a segment was written its events are still there. For each quarantined
segment (`workers.quarantine`) still `pending`:

1. its partition comes from its stamp or its name; the newest entry it can hold from its stamp, else from
   a sibling of the same batch (a drain names the segments of one batch alike, one per event type), else
   from the time in its name (plus CLOCK_MARGIN_MS), and never beyond what the group has delivered;
2. every entry of that stream up to that bound is decoded; those of the segment's type whose event is in
   no live segment of the log are written to `seg-<now>-p<partition>-recovered-<id>.parquet` (stamped);
3. what is lost: exact when the damaged file still names its event ids (an unreadable data page, a
   readable footer); otherwise none when the stream never lost an entry (`entries-added` equals its length),
   else unknown, and the sidecar says up to which entry the broker had trimmed.
The read model keeps the events it applied when they were first drained; the recovered segment is what
a later `rebuild` replays instead of the damaged one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pyarrow.parquet as pq
import redis

from epochstream.broker import connect, resolve_url
from epochstream.layout import DataLayout
from epochstream.readmodel.batch import stream_key
from epochstream.settings import Settings
from schemas.codec import decode
from schemas.keys import PAYLOAD_FIELD, Keys
from workers.log_reader import segments
from workers.log_schema import LOG_SCHEMAS, SCHEMAS, tables_by_type
from workers.log_store import LogStoreUnavailable, log_store
from workers.quarantine import QuarantinedFile, quarantined, read_checked, save
from workers.segment_meta import newest_id, stamp, stamps, written_us

log = logging.getLogger("epochstream.salvage")
CLOCK_MARGIN_MS = 60_000  # a worker's clock may run this far behind the broker's
PAGE = 5000


def recover_pending(settings: Settings, client: redis.Redis | None = None) -> list[QuarantinedFile]:
    """Try to recover every pending quarantined segment; returns those it dealt with. Without a reachable
    broker they stay pending (and say so) for the next try."""
    layout = DataLayout.of(settings)
    pending = [q for q in quarantined(layout) if q.recovery == "pending"]
    if not pending:
        return []
    own = client is None
    try:
        if own:
            client = connect(resolve_url(settings), socket_timeout=5, socket_connect_timeout=2)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - no broker now: try again next time
        for item in pending:
            item.recovery_note = f"waiting for the broker to recover its events ({type(exc).__name__}: {exc})"
            save(layout, item)
        return []
    try:
        for item in pending:
            recover(layout, settings, client, item)
            save(layout, item)
    finally:
        if own:
            client.close()
    return pending


def _upper_bound(layout: DataLayout, item: QuarantinedFile) -> tuple[str | None, str]:
    if item.last_stream_id:
        return item.last_stream_id, "its own stamp"
    store = log_store(layout)
    for event_type in LOG_SCHEMAS:
        sibling = layout.log_dir(event_type) / item.name
        if event_type != item.event_type and store.exists(sibling):
            try:
                partition, last = stamps(sibling, store)
            except LogStoreUnavailable:
                raise  # not the sibling's fault: recovery is tried again later
            except Exception:  # noqa: BLE001 - a damaged sibling says nothing; it is found on its own
                continue
            if last is not None and partition == item.partition:
                return last, f"the stamp of its sibling {event_type}/{item.name}"
    written = written_us(item.name)
    if written is None:
        return None, "nothing"
    return f"{written // 1000 + CLOCK_MARGIN_MS}-{2**63 - 1}", "the time in its name"


def _delivered(client: redis.Redis, stream: str, group: str) -> str | None:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    for info in groups:
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name == group:
            delivered = info["last-delivered-id"]
            return delivered.decode() if isinstance(delivered, bytes) else delivered
    return None


def _removed(client: redis.Redis, stream: str) -> tuple[bool | None, str | None]:
    """(whether the stream ever lost an entry to XTRIM or XDEL, the oldest entry it still holds); None for
    the first when the server does not say (`entries-added` is Redis 7 / Valkey)."""
    try:
        info = client.xinfo_stream(stream)
    except redis.ResponseError:
        return None, None
    added = info.get("entries-added")
    first = info.get("first-entry")
    first_id = first[0].decode() if first else None
    return (None if added is None else int(added) > int(info["length"])), first_id


def _ids_in_log(layout: DataLayout, event_type: str) -> set[str]:
    present: set[str] = set()
    for path in segments(layout, event_type):
        table = read_checked(layout, event_type, path, "recovery", columns=["event_id"])
        if table is not None:
            present.update(table.column("event_id").to_pylist())
    return present


def _ids_named_by(item: QuarantinedFile) -> set[str] | None:
    try:
        return set(pq.read_table(item.path, columns=["event_id"]).column("event_id").to_pylist())
    except Exception:  # noqa: BLE001 - damaged where the ids are: unknown
        return None


def recover(layout: DataLayout, settings: Settings, client: redis.Redis, item: QuarantinedFile) -> None:
    """Fill the item's recovery fields (and write the recovered segment)."""
    if item.event_type not in SCHEMAS:
        item.recovery, item.lost_events = "lost", item.events
        item.recovery_note = ("dead letters are not recovered from here; the entries are also in the dead-letter "
                              "stream while it keeps them (`epochstream dlq list`)")
        return
    if item.partition is None:
        item.recovery, item.lost_events = "lost", item.events
        item.recovery_note = "neither its name nor its metadata says which partition it came from"
        return
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream(item.partition)
    upper, upper_from = _upper_bound(layout, item)
    delivered = _delivered(client, stream, keys.group)
    if upper is None or delivered is None:
        item.recovery, item.lost_events = "lost", item.events
        item.recovery_note = f"the broker has no stream {stream} with group {keys.group}" if delivered is None \
            else "no bound on its stream entries: its name carries no time"
        return
    upper = min(upper, delivered, key=stream_key)
    expected = _ids_named_by(item)
    present = _ids_in_log(layout, item.event_type)
    found: dict[str, tuple[str, object]] = {}
    start = "-"
    while True:
        page = client.xrange(stream, min=start, max=upper, count=PAGE)
        for entry_id, fields in page:
            try:
                event = decode(fields.get(PAYLOAD_FIELD, b""))
            except Exception:  # noqa: BLE001 - a dead letter, never in a segment of events
                continue
            if event.type == item.event_type and event.event_id not in present \
                    and (expected is None or event.event_id in expected) and event.event_id not in found:
                found[event.event_id] = (entry_id.decode(), event)
        if len(page) < PAGE:
            break
        start = "(" + page[-1][0].decode()
    written = written_us(item.name)
    ingested = datetime.fromtimestamp(written / 1e6, UTC) if written else datetime.now(UTC)
    if found:
        rows = list(found.values())
        table = tables_by_type(rows, ingested)[item.event_type]
        now = datetime.now(UTC)
        name = f"seg-{now.strftime('%Y%m%dT%H%M%S%fZ')}-p{item.partition}-recovered-{uuid.uuid4().hex[:8]}.parquet"
        log_store(layout).write_parquet(stamp(table, item.partition, newest_id(sid for sid, _ in rows)),
                                        layout.log_dir(item.event_type) / name)
        item.recovery_note = f"recovered into log/{item.event_type}/{name}; "
    item.recovered_events = len(found)
    removed, first_held = _removed(client, stream)
    bound = f"entries of {stream} up to {upper} (bound from {upper_from})"
    if expected is not None:
        lost = expected - present - set(found)
        item.lost_events = len(lost)
        detail = f"; lost event ids: {sorted(lost)[:20]}" if lost else ""
        item.recovery_note += f"its footer still names its {len(expected)} events; {bound}{detail}"
    elif removed is False:
        item.lost_events = 0
        item.recovery_note += f"the broker never trimmed {stream}, so every event it held was among {bound}"
    else:
        held = f"it now holds entries from {first_held} on" if first_held else "it now holds none"
        item.lost_events = None
        item.recovery_note += (f"its footer is unreadable, so how many events it held is unknown; the broker has "
                               f"trimmed {stream} ({held}): events of this segment older than that are lost; "
                               f"searched {bound}")
    if item.lost_events == 0:
        item.recovery = "recovered"
    else:
        item.recovery = "partial" if found else "lost"
    log.warning("quarantined %s: %s, %d events recovered, %s lost", item.original, item.recovery,
                item.recovered_events, "unknown" if item.lost_events is None else item.lost_events)
