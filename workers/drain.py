"""The drain job: read one partition with the consumer group, write the log, commit the read model, then XACK.

One batch, in this order (a crash at any point loses nothing and duplicates nothing):
1. entries left pending by an earlier consumer are reclaimed first (at the start every pending entry: the
   drain holds the partition, so whoever read them is gone), then new ones are read (XREADGROUP);
2.-5. one batch (`workers.batch`): decode, write the log, commit the read model with the tracking record
   (checking this drain's fence token), then XADD the dead letters and XACK the whole batch.
   Not a MULTI: the DLQ and the partition's stream live in different Redis Cluster slots. A crash between
   the two can only repeat a dead letter (the Parquet `dead_letters` set already holds it), never lose one.
A crash before the commit redelivers the batch (the log may hold a row twice; every reader dedupes by
(run_id, event_id)); a crash between the commit and the XACK redelivers entries the tracking record already
covers, which are checked one by one and change nothing.

Transient vs terminal: only an entry's own fault dead-letters it. A failure of the machinery (a full disk,
a locked read model, the broker away) keeps the batch in hand, pending, and retries it with back-off until
the drain's deadline, recording the problem for `epochstream status` (`workers.health`); a drain that gives
up puts back the delivery counts it added, so an outage of any length costs the entries nothing. Delivery
counts then grow only when a drain dies on its batch (killed, out of memory, a crash in a library): an
entry delivered more than `max_deliveries` times is processed alone, and is dead-lettered only when drains
have died on it alone `max_deliveries` times — the entry kills its worker; a good one never gets there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import redis

from epochstream.agreement import agree
from epochstream.broker import connect, connect_queue
from epochstream.drain_metrics import record_batch
from epochstream.faults import CRASH_ENV, crash_point  # noqa: F401 - both for the tests
from epochstream.layout import DataLayout
from epochstream.readmodel import ReadModelWriter, StaleFence
from epochstream.readmodel.stores import store_for
from epochstream.settings import Settings
from schemas.keys import PAYLOAD_FIELD, Keys
from workers import dead_letters, health
from workers.batch import Entry, dead_letter_of, process_batch
from workers.catalog import ensure_seeds
from workers.catch_up import catch_up
from workers.locks import Heartbeat
from workers.segment_meta import segment_name
from workers.turns import Yielding

FAIR_SHARE_S = 0.5  # without lingering (in-process drains), caught up after this long means done
METRICS_EVERY_S = 1.0  # batch durations reach /metrics at most this late
LINGER_MS = 500  # a caught-up drain with nobody waiting blocks this long for new entries before looking again
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 5.0  # retrying a batch held up by its infrastructure


@dataclass
class DrainResult:
    partition: int
    stored: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    batches: int = 0
    refused: bool = False  # a newer drain holds the partition (fence, or its lock was taken over): this one stopped
    refusal: str = ""  # why, in words
    retries: int = 0  # attempts at a batch that failed on the infrastructure, not on its entries
    stalled: str | None = None  # the infrastructure problem this drain gave up on at its deadline, if any


_groups_made: set[tuple[int, str, str]] = set()  # (client, stream, group) this process made sure of


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """The consumer group exists (made once per stream and process: a drain job should not pay a round trip
    for it every time)."""
    key = (id(getattr(client, "connection_pool", client)), stream, group)  # a RedisCluster has no one pool
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


def drain_partition(settings_json: str, redis_url: str, partition: int) -> dict:
    """Entry point for a drain in a process of its own (the fault tests): plain values in, one Settings and
    one client made here. RQ jobs go through `workers.scheduling.run_drain_and_release`, which holds the lock."""
    settings = Settings.model_validate_json(settings_json)
    client = connect(redis_url)
    queue = connect_queue(settings.queue_url) if settings.queue_url else client
    try:
        return asdict(drain(client, settings, partition, linger=True, queue=queue))
    finally:
        client.close()
        if queue is not client:
            queue.close()


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


def take_fence(client: redis.Redis, keys: Keys, partition: int) -> int:
    """The next fence token of the partition: larger than any drain of it was given before."""
    return int(client.incr(keys.fence(partition)))


def drain(client: redis.Redis, settings: Settings, partition: int, *, heartbeat: Heartbeat | None = None,
          max_seconds: float | None = None, linger: bool = False, queue: redis.Redis | None = None,
          must_yield: Callable[[], bool] | None = None) -> DrainResult:
    """Drain one partition until it is caught up (or `max_seconds` passed: the scheduler queues the rest).

    Caught up means a read came back empty, or less than a full batch came while another partition's drain
    waits for a worker: the job then frees its worker at once instead of polling a trickle, which would
    starve the waiting partitions (without `linger`: less than a full batch after FAIR_SHARE_S). While no
    other drain waits, it `linger`s on its partition: caught up, it reads at most once per
    `settings.drain_window_ms`, so a trickle is applied in batches of a window's events instead of paying a
    batch's fixed cost for every one or two (what spread load, many runs each sending now and then, gives),
    and an empty read blocks up to LINGER_MS for new entries before the job ends. `heartbeat`: the lock's,
    when an RQ job holds one; once it is lost (another drain took the partition over) this one stops.

    `client` holds the streams (maybe a Redis Cluster); `queue` the drain queue and the batch metrics
    (default: `client`, one standalone server for both). `must_yield`: whether the worker is wanted
    elsewhere; by default `workers.turns.Yielding`: another job waits in the queue, or (inside an RQ job) the
    worker is shutting down.
    """
    keys = Keys(settings.namespace, settings.partitions)
    agree(client, keys)  # a worker counting partitions differently would drain the wrong streams: refuse
    queue = client if queue is None else queue
    run = _Drain(client, settings, partition, linger, queue, must_yield or Yielding(queue, keys))
    return run.until(time.monotonic() + (max_seconds if max_seconds is not None else settings.drain_max_s),
                     heartbeat)


@dataclass
class _Drain:
    """One drain's state across the retries of a batch held up by the infrastructure."""

    client: redis.Redis
    settings: Settings
    partition: int
    linger: bool
    queue: redis.Redis  # RQ's server: the drain queue, batch durations for /metrics
    must_yield: Callable[[], bool]  # the worker is wanted elsewhere (`workers.turns.Yielding`)
    keys: Keys = field(init=False)
    result: DrainResult = field(init=False)
    consumer: str = field(default_factory=consumer_name)
    writer: ReadModelWriter | None = None
    fence: int | None = None
    in_hand: list[Entry] = field(default_factory=list)  # read, not yet acknowledged
    in_hand_reclaimed: bool = False
    idle_ms: int = 0  # the first reclaim takes every pending entry: this drain holds the partition now
    problem: str | None = None
    problem_since: datetime | None = None
    batch_seconds: list[float] = field(default_factory=list)  # durations not yet counted for /metrics
    counts_sent_at: float = field(default_factory=time.monotonic)
    read_at: float = 0.0  # when new entries were last read (`_pace`)
    last_full: bool = True  # that read filled a batch: more is waiting, read again at once

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.namespace, self.settings.partitions)
        self.result = DrainResult(self.partition)

    @property
    def stream(self) -> str:
        return self.keys.stream(self.partition)

    def until(self, deadline: float, heartbeat: Heartbeat | None) -> DrainResult:
        soft_deadline = time.monotonic() + FAIR_SHARE_S
        backoff = BACKOFF_FIRST_S
        with contextlib.suppress(*health.BROKER_FAILURES):  # else made in the loop, once the broker is back
            ensure_group(self.client, self.stream, self.keys.group)
        try:
            while time.monotonic() < deadline:
                if heartbeat is not None and heartbeat.lost.is_set():
                    self.result.refused, self.result.refusal = True, f"lock taken over: {heartbeat.keys[0]}"
                    break
                try:
                    caught_up = self._step(deadline, soft_deadline)
                except StaleFence:
                    raise
                except health.INFRASTRUCTURE_FAILURES as exc:
                    self._held_up(exc)
                    time.sleep(max(0.0, min(backoff, deadline - time.monotonic())))
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                backoff = BACKOFF_FIRST_S
                if caught_up:
                    break
        except StaleFence as exc:  # another drain took the partition over; what we hold is reclaimed there
            self.result.refused, self.result.refusal = True, str(exc)
            health.log.warning("%s", exc)
        finally:
            self._close_writer()
            self._send_batch_counts()
        if self.in_hand and not self.result.refused:
            self.result.stalled = self.problem
            self._give_back_deliveries()
        with contextlib.suppress(*health.BROKER_FAILURES):
            _forget_consumer(self.client, self.stream, self.keys.group, self.consumer)
        return self.result

    # -- one step: make sure of the writer, have a batch, process it ----------------------------------------
    def _step(self, deadline: float, soft_deadline: float) -> bool:
        """Process one batch; True once caught up."""
        self._open_writer()
        if not self.in_hand:
            self.in_hand, self.in_hand_reclaimed = self._next_entries(deadline)
            if not self.in_hand:
                return True
        full = len(self.in_hand) >= self.settings.drain_batch
        reclaimed = self.in_hand_reclaimed
        started = time.monotonic()
        while self.in_hand:
            self._process_some()
        self._count_batch(time.monotonic() - started)
        self.result.batches += 1
        if self.problem is not None or self.result.batches == 1:  # also what an earlier drain gave up on
            health.clear(self.client, self.keys, self.partition)
            self.problem = self.problem_since = None
        if reclaimed or full:
            return False
        return self.must_yield() if self.linger else time.monotonic() > soft_deadline

    def _pace(self, deadline: float) -> None:
        """Caught up, read no sooner than a window after the last read: the entries arriving meanwhile make
        one batch."""
        wait = min(self.read_at + self.settings.drain_window_ms / 1000 - time.monotonic(),
                   deadline - time.monotonic())
        if wait > 0:
            time.sleep(wait)

    def _count_batch(self, seconds: float) -> None:
        """Note the batch's duration for `/metrics`; sent at most once a second (`_send_batch_counts`), not a
        round trip per batch: a drain of a trickling partition does many small batches."""
        self.batch_seconds.append(seconds)
        if time.monotonic() - self.counts_sent_at >= METRICS_EVERY_S:
            self._send_batch_counts()

    def _send_batch_counts(self) -> None:
        """On the queue broker (never a cluster's shards), one round trip. Best effort: a lost count is only a
        gauge that lags."""
        self.counts_sent_at = time.monotonic()
        if not self.batch_seconds:
            return
        with contextlib.suppress(*health.BROKER_FAILURES):
            pipe = self.queue.pipeline(transaction=False)
            for seconds in self.batch_seconds:
                record_batch(pipe, self.keys, seconds)
            pipe.execute()
        self.batch_seconds = []

    def _open_writer(self) -> None:
        if self.writer is not None:
            return
        ensure_seeds(DataLayout.of(self.settings))
        ensure_group(self.client, self.stream, self.keys.group)
        if self.fence is None:
            self.fence = take_fence(self.client, self.keys, self.partition)
        writer = ReadModelWriter.open(self.settings.data_dir, self.settings.future_skew_s,
                                      self.settings.read_model_url)
        try:
            writer.claim(self.partition, self.fence)
            catch_up(writer, DataLayout.of(self.settings), self.partition, self.fence)
        except BaseException:
            writer.close()
            raise
        self.writer = writer

    def _close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _next_entries(self, deadline: float) -> tuple[list[Entry], bool]:
        client, settings, stream, group = self.client, self.settings, self.stream, self.keys.group
        entries = _reclaim(client, stream, group, self.consumer, settings, self.idle_ms)
        if entries:
            self.result.reclaimed += len(entries)
            return entries, True
        self.idle_ms = settings.claim_idle_ms
        if self.linger and not self.last_full:
            self._pace(deadline)
        entries = _read_new(client, stream, group, self.consumer, settings.drain_batch)
        if not entries and self.linger and time.monotonic() + LINGER_MS / 1000 < deadline \
                and not self.must_yield():
            entries = _read_new(client, stream, group, self.consumer, settings.drain_batch, LINGER_MS)
        self.read_at, self.last_full = time.monotonic(), len(entries) >= settings.drain_batch
        return entries, False

    def _process_some(self) -> None:
        """The entries drains died on again and again, one at a time (the first of them alone); else the
        whole batch in hand. What went through leaves `in_hand`."""
        suspects = [e for e in self.in_hand if e.deliveries > self.settings.max_deliveries]
        if not suspects:
            stored, dead = process_batch(self.client, self.settings, self.partition, self.in_hand, self.writer,
                                         self.fence)
            self.in_hand = []
        else:
            stored, dead = self._alone(suspects[0])
            self.in_hand = [e for e in self.in_hand if e is not suspects[0]]
        self.result.stored += stored
        self.result.dead_lettered += dead

    def _alone(self, entry: Entry) -> tuple[int, int]:
        """Process an entry drains died on `max_deliveries` times in its batch, by itself; if drains have died
        on it alone as often, it is what kills them: dead-letter it without processing it again."""
        solo = self.keys.solo_attempts(self.partition)
        attempts = int(self.client.hincrby(solo, entry.stream_id, 1))
        if attempts > self.settings.max_deliveries:
            reason = (f"a worker died each of the {attempts - 1} times it processed this entry alone (after "
                      f"{entry.deliveries} deliveries): it kills whoever processes it (out of memory, a crash "
                      f"in a library); set aside so its partition goes on")
            stored, dead = 0, self._bury(entry, reason)
        else:
            try:
                stored, dead = process_batch(self.client, self.settings, self.partition, [entry], self.writer,
                                             self.fence)
            except health.INFRASTRUCTURE_FAILURES:
                with contextlib.suppress(*health.BROKER_FAILURES):  # not its fault: no attempt counted
                    self.client.hincrby(solo, entry.stream_id, -1)
                raise
        self.client.hdel(solo, entry.stream_id)  # any other exception leaves the attempt counted, as a death would
        return stored, dead

    def _bury(self, entry: Entry, reason: str) -> int:
        now = datetime.now(UTC)
        letter = dead_letter_of(self.stream, entry, reason, now)
        dead_letters.write_to_log([letter], self.partition, now, DataLayout.of(self.settings),
                                  segment_name(now, self.partition, entry.stream_id))
        pipe = self.client.pipeline(transaction=False)
        dead_letters.add(pipe, self.keys, [letter])
        pipe.xack(self.stream, self.keys.group, entry.stream_id)
        pipe.execute()
        return 1

    # -- held up by the infrastructure ---------------------------------------------------------------------
    def _held_up(self, exc: BaseException) -> None:
        """Keep the batch; drop the writer (its connection may be unusable after a full disk); say why."""
        self._close_writer()
        self.result.retries += 1
        where = store_for(self.settings.data_dir, self.settings.read_model_url).describe()
        self.problem = health.describe(exc, self.settings.data_dir, where)
        self.problem_since = self.problem_since or datetime.now(UTC)
        health.report(self.client, self.keys, self.partition, self.problem, self.result.retries, self.problem_since)

    def _give_back_deliveries(self) -> None:
        """Put back the delivery count this drain added to the batch it could not store (XCLAIM RETRYCOUNT), so
        the entries' counts keep saying only how often a drain died on them. Best effort: with the broker
        away they keep one delivery more."""
        by_count: dict[int, list[str]] = {}
        for entry in self.in_hand:
            by_count.setdefault(max(entry.deliveries - 1, 0), []).append(entry.stream_id)
        with contextlib.suppress(*health.BROKER_FAILURES):
            pipe = self.client.pipeline(transaction=False)
            for count, ids in by_count.items():
                pipe.xclaim(self.stream, self.keys.group, self.consumer, 0, ids, retrycount=count, justid=True)
            pipe.execute()


def _forget_consumer(client: redis.Redis, stream: str, group: str, consumer: str) -> None:
    """Drop our consumer name from the group when it holds nothing, so the group does not fill with pids."""
    for info in client.xinfo_consumers(stream, group):
        if info["name"].decode() == consumer and info["pending"] == 0:
            client.xgroup_delconsumer(stream, group, consumer)
