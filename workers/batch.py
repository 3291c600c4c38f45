"""One drained batch, steps 2-5 of `workers.drain`: decode, write the log, commit the read model, acknowledge.

2. decode each entry: validate + upcast; a poison entry (an `event_id` not of its own run, or a run of
   another partition, included) or one reusing an identity (run, seq) already taken with other content
   (`ReadModelWriter.conflicts`) becomes a dead letter with a reason (decoding is pure: an entry that fails
   once fails every time);
3. write one Parquet segment per event type (and one of dead letters) through the log's store
   (`workers.log_store`: local temp name, fsync, rename; or one PUT of the unique name to S3); each
   segment records its partition and newest stream id, so a read model behind the log can catch up;
4. apply the batch to the read model in one transaction with the partition's tracking record, checking
   the drain's fence token (a drain paused past its lock is refused, never writes over newer state);
5. in one pipelined round trip, in this order: XADD the dead letters to the DLQ stream, XACK the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from epochstream.faults import crash_on, crash_point, pause_point
from epochstream.layout import DataLayout
from epochstream.readmodel import ReadModelWriter
from epochstream.settings import Settings
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.keys import Keys, partition_of
from workers import dead_letters
from workers.log_schema import tables_by_type
from workers.log_store import log_store
from workers.segment_meta import segment_name, stamp


@dataclass
class Entry:
    stream_id: str
    payload: bytes
    deliveries: int = 1


def _decode_batch(entries: list[Entry], settings: Settings, partition: int) -> tuple[list, list[tuple[Entry, str]]]:
    good, bad = [], []
    for entry in entries:
        try:
            event = decode(entry.payload)
            home = partition_of(event.run_id, settings.partitions)
            if home != partition:  # applied here, its run would have two writers: the other drain races this one
                bad.append((entry, f"run {event.run_id!r} belongs to partition {home} of {settings.partitions}, but "
                                   f"this entry is in partition {partition}'s stream (put there by hand, or by a "
                                   "producer with another partition count); `epochstream dlq replay` publishes it "
                                   "to its run's partition"))
                continue
            good.append((entry.stream_id, event))
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


def _refuse_conflicts(good: list, bad: list[tuple[Entry, str]], batch: list[Entry], writer: ReadModelWriter) -> None:
    """Dead-letter the events that reuse a taken identity with other content, before anything is written."""
    conflicts = writer.conflicts(good)
    if conflicts:
        entries = {e.stream_id: e for e in batch}
        bad += [(entries[sid], conflicts[sid]) for sid, _ in good if sid in conflicts]
        good[:] = [item for item in good if item[0] not in conflicts]


def process_batch(client: redis.Redis, settings: Settings, partition: int, entries: list[Entry],
                  writer: ReadModelWriter, fence: int) -> tuple[int, int]:
    """Steps 2-5 of the module docstring for one batch; returns (stored, dead-lettered)."""
    keys, layout = Keys(settings.namespace, settings.partitions), DataLayout.of(settings)
    store = log_store(layout)
    stream = keys.stream(partition)
    now = datetime.now(UTC)
    good, bad = _decode_batch(entries, settings, partition)
    _refuse_conflicts(good, bad, entries, writer)
    tables = _to_tables(good, bad, entries, now)
    crash_on(e.payload for e in entries)
    crash_point("before_write")
    last_id = entries[-1].stream_id
    name = segment_name(now, partition, last_id)
    for event_type, table in tables.items():
        store.write_parquet(stamp(table, partition, last_id), layout.log_dir(event_type) / name)
    letters = [dead_letter_of(stream, entry, reason, now) for entry, reason in bad]
    if letters:
        dead_letters.write_to_log(letters, partition, now, layout, name)
    crash_point("after_write")
    pause_point("after_write")
    applied = writer.apply(partition, [(sid, event, now) for sid, event in good], fence, now)
    if applied.conflicts:  # the safety net: the check before the write missed it (it is in the log, not applied)
        by_id = {e.stream_id: e for e in entries}
        late = [dead_letter_of(stream, by_id[sid], why, now) for sid, why in applied.conflicts]
        dead_letters.write_to_log(late, partition, now, layout, name.replace(".parquet", "-conflicts.parquet"))
        letters += late
    crash_point("before_ack")
    pipe = client.pipeline(transaction=False)  # ordered, not atomic: see step 5 above
    dead_letters.add(pipe, keys, letters)
    pipe.xack(stream, keys.group, *[e.stream_id for e in entries])
    pipe.execute()
    return len(good) - len(applied.conflicts), len(letters)


def dead_letter_of(stream: str, entry: Entry, reason: str, now: datetime) -> dead_letters.DeadLetter:
    return dead_letters.DeadLetter(stream, entry.stream_id, reason, entry.payload, entry.deliveries, now.isoformat())
