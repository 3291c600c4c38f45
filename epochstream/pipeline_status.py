"""The figures to run the pipeline by, read from where they live: `GET /metrics` and `epochstream status`.

Per partition, from the streams broker: stream length, entries pending (delivered to a drain, not yet
acknowledged) and the age of the oldest of them, and **ingest lag**: the age of the oldest entry not done
yet, pending or not delivered at all (0 when the partition is caught up). A drain acknowledges an entry only
after the read model committed it (or it became a dead letter), so "done" is "applied". From the read
model's tracking record: the age of the newest applied entry (now minus the time of the applied position,
which also grows while nothing is published: a figure to look at, not to alert on). Stream entry ids carry the broker's
millisecond clock, so no producer's clock enters either figure. Besides: dead letters (the DLQ stream's
length), events stored in the read model, and the drain batch duration histogram (`epochstream.drain_metrics`,
on the queue broker).

`gather` does the I/O in a few round trips (one pipeline per broker); the arithmetic is in pure functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from epochstream import drain_metrics
from epochstream.drain_metrics import BatchDurations
from epochstream.readmodel.reader import ReadModelReader
from epochstream.settings import Settings
from schemas.keys import Keys

BROKER_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)


def entry_ms(stream_id: str | bytes | None) -> int | None:
    """The broker's millisecond clock in a stream entry id (`ms-seq`), None for no id or `0-0`."""
    if stream_id is None:
        return None
    text = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
    ms = int(text.partition("-")[0] or 0)
    return ms or None


def age_s(stream_id: str | bytes | None, now_ms: int) -> float | None:
    ms = entry_ms(stream_id)
    return None if ms is None else max(now_ms - ms, 0) / 1000


@dataclass(frozen=True)
class PartitionStatus:
    partition: int
    length: int
    pending: int
    oldest_pending_age_s: float | None  # None: nothing pending
    ingest_lag_s: float  # age of the oldest entry not applied yet; 0 when caught up
    newest_applied_age_s: float | None  # None: nothing applied yet
    applied_position: str


@dataclass
class PipelineStatus:
    partitions: list[PartitionStatus] = field(default_factory=list)
    dead_letters: int | None = None
    events_stored: int | None = None
    batch_durations: BatchDurations | None = None
    broker_error: str | None = None  # the streams broker did not answer (its figures are missing)
    queue_error: str | None = None  # the queue broker did not answer (no batch durations)
    read_model_error: str | None = None  # the read model could not be read

    @property
    def ingest_lag_s(self) -> float | None:
        return max((p.ingest_lag_s for p in self.partitions), default=None)


def partition_status(partition: int, length: int, pending_summary: dict | None, first_undelivered: list,
                     applied: str, now_ms: int) -> PartitionStatus:
    """Pure: one partition's figures from its replies (`XLEN`, `XPENDING` summary, `XRANGE (last-delivered +
    COUNT 1`) and its applied position."""
    pending = int((pending_summary or {}).get("pending") or 0)
    oldest = age_s((pending_summary or {}).get("min"), now_ms) if pending else None
    waiting = age_s(first_undelivered[0][0], now_ms) if first_undelivered else None
    lag = max(oldest or 0.0, waiting or 0.0)
    return PartitionStatus(partition, int(length or 0), pending, oldest, lag, age_s(applied, now_ms), applied)


def applied_positions(reader: ReadModelReader) -> dict[int, str]:
    return {partition: position for partition, position, _fence, _batches in reader.tracking()}


def gather(settings: Settings, streams, queue, reader: ReadModelReader, now_ms: int | None = None) -> PipelineStatus:
    """Every figure that can be read now; what cannot is named in the `*_error` fields, never raised."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    keys = Keys(settings.namespace, settings.partitions)
    status = PipelineStatus()
    applied: dict[int, str] = {}
    try:
        applied = applied_positions(reader)
        status.events_stored = reader.events_stored()
    except Exception as exc:  # noqa: BLE001 - any failure to read it is a figure missing, reported as such
        status.read_model_error = f"{type(exc).__name__}: {exc}"
    if streams is not None:
        try:
            status.partitions, status.dead_letters = _stream_figures(streams, keys, applied, now_ms)
        except BROKER_ERRORS as exc:
            status.broker_error = f"{type(exc).__name__}: {exc}"
    if queue is not None:
        try:
            status.batch_durations = drain_metrics.read(queue, keys)
        except BROKER_ERRORS as exc:
            status.queue_error = f"{type(exc).__name__}: {exc}"
    return status


def _stream_figures(streams, keys: Keys, applied: dict[int, str], now_ms: int) -> tuple[list[PartitionStatus], int]:
    pipe = streams.pipeline(transaction=False)  # one round trip per shard; partitions live in their own slots
    for partition in range(keys.partitions):
        stream = keys.stream(partition)
        pipe.xlen(stream)
        pipe.xpending(stream, keys.group)
        pipe.xinfo_groups(stream)
    pipe.xlen(keys.dlq)
    replies = pipe.execute(raise_on_error=False)
    figures, delivered = [], []
    for partition in range(keys.partitions):
        length, pending, groups = (_no_group(r) for r in replies[3 * partition:3 * partition + 3])
        ours = [g for g in groups or [] if _text(g["name"]) == keys.group]
        delivered.append(_text(ours[0]["last-delivered-id"]) if ours else "0-0")
        figures.append((length or 0, pending))
    pipe = streams.pipeline(transaction=False)
    for partition, last in enumerate(delivered):
        pipe.xrange(keys.stream(partition), min=f"({last}", count=1)
    firsts = [_no_group(r) for r in pipe.execute(raise_on_error=False)]
    out = [partition_status(p, length, pending, firsts[p], applied.get(p, "0-0"), now_ms)
           for p, (length, pending) in enumerate(figures)]
    return out, int(_no_group(replies[-1]) or 0)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _no_group(reply):
    """A reply, None for a stream no drain has read yet (no group, or no stream), raised if another error."""
    if isinstance(reply, redis.ResponseError) and ("NOGROUP" in str(reply) or "no such key" in str(reply)):
        return None
    if isinstance(reply, Exception):
        raise reply
    return reply
