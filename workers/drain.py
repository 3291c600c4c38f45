"""The drain job: read one partition with the consumer group, write the log, commit the read model, then XACK.

One batch, in this order (a crash at any point loses nothing and duplicates nothing):
1. entries left pending by an earlier consumer are reclaimed first (at the start every pending entry: the
   drain holds the partition, so whoever read them is gone), then new ones are read (XREADGROUP);
2. decode each entry: validate + upcast; a poison entry, or one delivered more than `max_deliveries`
   times, becomes a dead letter with a reason;
3. write one Parquet segment per event type (and one of dead letters): temp name, fsync, rename; each
   segment records its partition and newest stream id, so a read model behind the log can catch up;
4. apply the batch to the read model in one transaction with the partition's tracking record, checking
   this drain's fence token (a drain paused past its lock is refused, never writes over newer state);
5. in one pipelined round trip, in this order: XADD the dead letters to the DLQ stream, XACK the whole batch.
   Not a MULTI: the DLQ and the partition's stream live in different Redis Cluster slots. A crash between
   the two can only repeat a dead letter (the Parquet `dead_letters` set already holds it), never lose one.
A crash before 4 redelivers the batch (the log may hold a row twice; every reader dedupes by event_id); a
crash between 4 and 5 redelivers entries the tracking record already covers, which are checked one by one
and change nothing.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyarrow as pa
import redis
from rq import Queue

from epochstream.agreement import agree
from epochstream.broker import connect
from epochstream.faults import CRASH_ENV, crash_point  # noqa: F401 - CRASH_ENV: for the tests
from epochstream.layout import DataLayout, atomic_write_parquet
from epochstream.readmodel import ReadModelWriter, StaleFence
from epochstream.settings import Settings
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.keys import PAYLOAD_FIELD, Keys
from workers.catalog import ensure_seeds
from workers.catch_up import SEGMENT_LAST_ID, SEGMENT_PARTITION, catch_up
from workers.log_schema import DEAD_LETTERS, dead_letter_table, tables_by_type

FAIR_SHARE_S = 0.5  # once caught up after this long, a drain yields its worker to other partitions
LINGER_MS = 500  # a caught-up drain with nobody waiting blocks this long for new entries before looking again


@dataclass
class DrainResult:
    partition: int
    stored: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    batches: int = 0
    refused: bool = False  # a newer drain holds the partition (fence): this one stopped


@dataclass
class Entry:
    stream_id: str
    payload: bytes
    deliveries: int = 1


_groups_made: set[tuple[int, str, str]] = set()  # (client, stream, group) this process made sure of


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """The consumer group exists (made once per stream and process: a drain job should not pay a round trip
    for it every time)."""
    key = (id(client.connection_pool), stream, group)
    if key in _groups_made:
        return
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    _groups_made.add(key)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def drain_partition(settings_json: str, redis_url: str, partition: int, lock_key: str | None = None) -> dict:
    """RQ job entry point: arguments are plain values so any worker host can run it."""
    settings = Settings.model_validate_json(settings_json)
    client = connect(redis_url)
    try:
        return asdict(drain(client, settings, partition, lock_key=lock_key, linger=True))
    finally:
        client.close()


def _reclaim(client: redis.Redis, stream: str, group: str, consumer: str, settings: Settings,
             min_idle_ms: int) -> list[Entry]:
    """Take over entries pending at least `min_idle_ms` without an ack, with their delivery counts."""
    reply = client.xautoclaim(stream, group, consumer, min_idle_ms, "0-0", count=settings.drain_batch)
    claimed = [(eid.decode(), fields) for eid, fields in reply[1] if fields is not None]
    if not claimed:
        return []
    pending = client.xpending_range(stream, group, min=claimed[0][0], max=claimed[-1][0],
                                    count=len(claimed) * 2 + 10, consumername=consumer)
    counts = {p["message_id"].decode(): p["times_delivered"] for p in pending}
    return [Entry(sid, fields.get(PAYLOAD_FIELD, b""), counts.get(sid, 1)) for sid, fields in claimed]


def _read_new(client: redis.Redis, stream: str, group: str, consumer: str, count: int,
              block_ms: int | None = None) -> list[Entry]:
    reply = client.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
    entries = reply[0][1] if reply else []
    return [Entry(eid.decode(), fields.get(PAYLOAD_FIELD, b"")) for eid, fields in entries]


def _decode_batch(entries: list[Entry], settings: Settings) -> tuple[list, list[tuple[Entry, str]]]:
    good, bad = [], []
    for entry in entries:
        if entry.deliveries > settings.max_deliveries:
            bad.append((entry, f"delivered {entry.deliveries} times without being acknowledged "
                               f"(max_deliveries={settings.max_deliveries}): a worker failed on it every time"))
            continue
        try:
            good.append((entry.stream_id, decode(entry.payload)))
        except SchemaError as exc:
            bad.append((entry, str(exc)))
        except Exception as exc:  # noqa: BLE001 - decoding is pure: whatever it raises, this entry always will
            bad.append((entry, f"cannot be decoded: {exc!r}"))
    return good, bad


# What pyarrow raises for bad values; RecursionError: a config the codec parsed but too deep to encode again.
STORE_ERRORS = (OverflowError, ValueError, TypeError, ArithmeticError, RecursionError)


def _to_tables(good: list, bad: list[tuple[Entry, str]], batch: list[Entry], now: datetime) -> dict:
    """Arrow tables per type; an event that validates but cannot be stored (e.g. int64 overflow) is dead."""
    try:
        return tables_by_type(good, now)
    except STORE_ERRORS:
        pass  # find the culprits one by one (rare: only a batch holding one pays this)
    entries = {e.stream_id: e for e in batch}
    kept: list = []
    for item in good:
        try:
            tables_by_type([item], now)
            kept.append(item)
        except STORE_ERRORS as exc:
            bad.append((entries[item[0]], f"valid event that cannot be stored in Parquet: {exc}"))
    good[:] = kept
    return tables_by_type(good, now)


def _segment_name(now: datetime, partition: int) -> str:
    return f"seg-{now.strftime('%Y%m%dT%H%M%S%fZ')}-p{partition}-{uuid.uuid4().hex[:8]}.parquet"


def _stamped(table: pa.Table, partition: int, last_id: str) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), SEGMENT_PARTITION: str(partition),
                                          SEGMENT_LAST_ID: last_id})


def process_batch(client: redis.Redis, settings: Settings, partition: int, entries: list[Entry],
                  writer: ReadModelWriter, fence: int, lock_key: str | None = None) -> tuple[int, int]:
    """Steps 2-5 of the module docstring for one batch; returns (stored, dead-lettered)."""
    keys, layout = Keys(settings.namespace, settings.partitions), DataLayout(settings.data_dir)
    stream = keys.stream(partition)
    now = datetime.now(UTC)
    good, bad = _decode_batch(entries, settings)
    tables = _to_tables(good, bad, entries, now)
    crash_point("before_write")
    name, last_id = _segment_name(now, partition), entries[-1].stream_id
    for event_type, table in tables.items():
        atomic_write_parquet(_stamped(table, partition, last_id), layout.log_dir(event_type) / name)
    if bad:
        rows = [{"stream": stream, "stream_id": e.stream_id, "partition": partition, "reason": reason,
                 "payload": e.payload, "deliveries": e.deliveries, "dead_lettered_at": now} for e, reason in bad]
        atomic_write_parquet(dead_letter_table(rows), layout.log_dir(DEAD_LETTERS) / name)
    crash_point("after_write")
    writer.apply(partition, [(sid, event, now) for sid, event in good], fence, now)
    crash_point("before_ack")
    pipe = client.pipeline(transaction=False)  # ordered, not atomic: see step 5 above
    for entry, reason in bad:
        pipe.xadd(keys.dlq, {b"payload": entry.payload, b"reason": reason.encode(), b"stream": stream,
                             b"entry_id": entry.stream_id, b"deliveries": str(entry.deliveries),
                             b"at": now.isoformat()})
    pipe.xack(stream, keys.group, *[e.stream_id for e in entries])
    if lock_key:
        pipe.expire(lock_key, max(int(settings.drain_max_s * 4), 60))
    pipe.execute()
    return len(good), len(bad)


def take_fence(client: redis.Redis, keys: Keys, partition: int) -> int:
    """The next fence token of the partition: larger than any drain of it was given before."""
    return int(client.incr(keys.fence(partition)))


def drain(client: redis.Redis, settings: Settings, partition: int, *, lock_key: str | None = None,
          max_seconds: float | None = None, linger: bool = False) -> DrainResult:
    """Drain one partition until it is caught up (or `max_seconds` passed: the scheduler queues the rest).

    Caught up means a read came back empty, or (after FAIR_SHARE_S) less than a full batch: the job then
    frees its worker for another partition instead of polling a trickle, which would starve partitions
    waiting for a worker. While no other drain waits for a worker, though, it lingers on its partition
    with a blocking read (up to LINGER_MS at a time): a new event is then drained as it arrives instead of
    after the next scheduling round and job start.
    """
    keys = Keys(settings.namespace, settings.partitions)
    agree(client, keys)  # a worker counting partitions differently would drain the wrong streams: refuse
    stream, group = keys.stream(partition), keys.group
    layout = DataLayout(settings.data_dir)
    ensure_seeds(layout)
    ensure_group(client, stream, group)
    result = DrainResult(partition)
    consumer = consumer_name()
    waiting = Queue(keys.drain_queue, connection=client).key if linger else None  # other partitions' drains
    writer = ReadModelWriter.open(settings.data_dir)
    try:
        fence = take_fence(client, keys, partition)
        writer.claim(partition, fence)
        catch_up(writer, layout, partition, fence)
        deadline = time.monotonic() + (max_seconds if max_seconds is not None else settings.drain_max_s)
        soft_deadline = time.monotonic() + FAIR_SHARE_S
        idle_ms = 0  # the first reclaim takes every pending entry: this drain holds the partition now
        while time.monotonic() < deadline:
            entries = _reclaim(client, stream, group, consumer, settings, idle_ms)
            reclaimed = bool(entries)
            result.reclaimed += len(entries)
            if not entries:
                idle_ms = settings.claim_idle_ms
                entries = _read_new(client, stream, group, consumer, settings.drain_batch)
            if not entries and waiting is not None and time.monotonic() + LINGER_MS / 1000 < deadline \
                    and not client.llen(waiting):
                entries = _read_new(client, stream, group, consumer, settings.drain_batch, LINGER_MS)
            if not entries:
                break
            stored, dead = process_batch(client, settings, partition, entries, writer, fence, lock_key)
            result.stored += stored
            result.dead_lettered += dead
            result.batches += 1
            if not reclaimed and len(entries) < settings.drain_batch and time.monotonic() > soft_deadline:
                break
    except StaleFence:
        result.refused = True  # another drain took the partition over; what we hold is reclaimed there
    finally:
        writer.close()
    _forget_consumer(client, stream, group, consumer)
    return result


def _forget_consumer(client: redis.Redis, stream: str, group: str, consumer: str) -> None:
    """Drop our consumer name from the group when it holds nothing, so the group does not fill with pids."""
    for info in client.xinfo_consumers(stream, group):
        if info["name"].decode() == consumer and info["pending"] == 0:
            client.xgroup_delconsumer(stream, group, consumer)
