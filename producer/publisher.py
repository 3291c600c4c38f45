"""The background publisher: training threads hand it events; one daemon thread delivers them.

Caller side: `publish` appends an event (a model, or a run's draft: `producer.drafts`) to a bounded
in-memory queue and returns; it never blocks, never touches the disk or the network, never wakes a thread
and never raises. A full queue drops the event, counted in its run's drop report (`producer.drops`).

Background side, one thread per publisher, in passes (every `POLL_S` when idle, at once for a flush):
1. take what is queued, build and encode it, and send it to the broker in one round trip
   (`producer.delivery`: exactly once per event, whatever is retried);
2. if the broker cannot be resolved, is down, slow (past `publish_timeout_s`) or answers with any error
   but one proving the events can never be accepted (`producer.delivery.is_permanent`), the events go to
   the on-disk spool (`producer.spool`; at most `spool_max_bytes` per process) instead; while anything
   of ours is spooled, new events go behind it, so a run's events are never reordered;
3. deliver spooled events, oldest first, when the broker takes them again (retries back off to 2 s),
   including what dead processes left in the same spool directory (`producer.courier` does only this,
   for `epochstream spool push`, `up` and `worker`), each re-homed to the stream this process routes it to.

The broker side (client, back-off, partition-count agreement, counts) is `producer.link.BrokerLink`.

`flush(timeout)` waits until everything published so far is delivered; `close()` and process exit do the
same within a bound, and leave whatever could not be delivered in the spool for the next process.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from epochstream.broker import resolve_url
from epochstream.settings import Settings
from producer import lifecycle
from producer.delivery import client_for, read_mark
from producer.drafts import RunIdentity, built, identity_of
from producer.link import BrokerLink
from producer.notices import Notices, log
from producer.routes import Routes
from producer.spool import Backlog, Record, Spool, adopt_orphans, has_segments
from schemas.codec import encode
from schemas.keys import Keys

if TYPE_CHECKING:
    from producer.sink import Queued

MAX_BATCH = 1000  # events taken from the queue per pass
REPLAY_BATCH = 1000  # spooled records per round trip
REPLAY_SLICE_S = 0.05  # replay at most this long before looking at the queue again
POLL_S = 0.25  # an idle thread looks at the queue this often: publish never pays for a wake-up
WAKE_AT = MAX_BATCH  # ...unless this many events wait
ORPHAN_SCAN_S = 30.0


class Publisher:
    """The `producer.sink.Sink` that delivers events to the run's stream partition; see the module
    docstring for how."""

    def __init__(self, settings: Settings, *, url_resolver: Callable[[Settings], str] = resolve_url,
                 queue_size: int | None = None):
        self.settings = settings
        self.keys = Keys(settings.namespace, settings.partitions)
        self.notices = Notices()
        self.spool_dir = settings.resolved_spool_dir() / settings.namespace
        self.spooled = 0  # events written to the spool (and delivered later, or left for the next process)
        self.dropped = 0  # events given up on, each counted in its run's drop report
        self._resolve_url = url_resolver
        self._maxsize = queue_size or settings.publish_queue_size
        self._start_lock = threading.RLock()  # re-entrant: a signal handler may flush while we hold it
        self._reset_state()
        lifecycle.track_publisher(self)

    def _reset_state(self) -> None:
        self._items: deque[Queued] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False  # the thread holds events that are neither in the broker nor in the spool
        self._urgent = False  # a flush wants an attempt now, whatever the backoff says
        self._closing = False
        self._closed = False
        self._spool = Spool(self.spool_dir, self.settings.spool_max_bytes, self.settings.spool_segment_bytes,
                            self.settings.spool_fsync_s)
        self._adopted: list[Backlog] = []
        self._next_scan = 0.0
        self._started_pass = 0
        self._completed_pass = 0
        self._pass_done = threading.Condition()  # notified after every pass: what flush waits on
        self._routes = Routes(self.keys)
        self._link = BrokerLink(self.settings, self.keys, self._resolve_url, self.notices, self._routes, self._drop,
                                self.spool_dir)
        self._unspooled = 0  # own spooled events delivered since

    # -- what the broker took (`producer.link`) ----------------------------------------------------------
    @property
    def published(self) -> int:
        """Events the broker added (never counting a retried event twice)."""
        return self._link.published

    @property
    def skipped(self) -> int:
        """Events sent again that the broker already had (a retry after a lost reply)."""
        return self._link.skipped

    @property
    def errors(self) -> Counter[str]:
        """Failed delivery attempts by broker error code."""
        return self._link.errors

    @property
    def last_error(self) -> str | None:
        """The latest failed delivery attempt, in words."""
        return self._link.last_error

    @property
    def closed(self) -> bool:
        return self._closed

    # -- caller side: never blocks, never raises -------------------------------------------------------
    def publish(self, event: Queued) -> None:
        try:
            if self._closed:
                self._drop(1, "closed", "an event was published after the publisher was closed: dropped",
                           identity_of(event))
                return
            if len(self._items) >= self._maxsize:
                self._drop(1, "queue_full", "the publish queue is full (the broker and the spool are slower than "
                                            f"training; EPOCHSTREAM_PUBLISH_QUEUE_SIZE={self._maxsize}): events "
                                            "are being dropped", identity_of(event))
                return
            self._items.append(event)
            if self._thread is None:
                self._start()
            elif len(self._items) == WAKE_AT:
                self._wake.set()
        except Exception as exc:  # noqa: BLE001 - the training loop must never see our failures
            self.notices.warn(f"publish-{type(exc).__name__}", f"could not queue an event: {exc!r}")

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver what was published so far, and what is spooled here (ours and dead processes'), waiting
        at most `timeout` seconds. True when nothing is left undelivered.

        Returns False early once a delivery attempt made for this call has failed: everything is then on
        disk, and the background thread keeps retrying. Never raises.
        """
        try:
            deadline = time.monotonic() + max(timeout, 0.0)
            if self._thread is None and not self._closed:
                self._start()
            target = self._started_pass + 1  # the first pass that begins after this call
            self._urgent = True
            self._wake.set()
            with self._pass_done:
                while True:
                    if self._completed_pass >= target:
                        if self._nothing_left():
                            return True
                        if self._link.failed_pass >= target and not self._items and not self._busy:
                            return False
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._alive():
                        return self._nothing_left()
                    self._pass_done.wait(min(left, 0.05))
        except Exception as exc:  # noqa: BLE001
            self.notices.warn(f"flush-{type(exc).__name__}", f"flush failed: {exc!r}")
            return False

    def close(self, timeout: float | None = None) -> bool:
        """Flush (at most `timeout`, default `exit_flush_s`), then stop the thread. What could not be
        delivered stays in the spool, where this or a later process picks it up. True if nothing is left."""
        timeout = self.settings.exit_flush_s if timeout is None else timeout
        closed_before = self._closed
        ok = self.flush(timeout) if self._alive() and not self._closed else self._nothing_left()
        if not ok and not closed_before:
            self._say_what_is_left()
        self._closing = True
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.settings.publish_timeout_s + 1.0)
        return ok

    def _say_what_is_left(self) -> None:
        own = self.spooled - self._unspooled + len(self._items)
        why = f" (last broker error: {self.last_error})" if self.last_error else ""
        log.warning("epochstream: %s in the spool at %s%s. `epochstream spool push`, `epochstream up` or "
                    "`epochstream worker` on this host (same EPOCHSTREAM_SPOOL_DIR and EPOCHSTREAM_NAMESPACE) "
                    "delivers them; `epochstream spool status` shows what waits",
                    f"{own} event(s) of this process stay" if own > 0 else "events earlier processes left stay",
                    self.spool_dir, why)

    def seq_mark(self, run_id: str) -> int | None:
        """The run's seq mark in the broker (None: it has no events there). Asked on the caller's thread,
        within `publish_timeout_s`; raises when the broker cannot be asked. `start_run` uses it."""
        client = client_for(self._resolve_url(self.settings), self.settings.publish_timeout_s)
        try:
            return read_mark(client, self.keys.run_seq(run_id))
        finally:
            client.close()

    def spool_busy(self) -> bool:
        """This host's spool directory holds segments (of any process): events the broker has not seen."""
        return has_segments(self.spool_dir)

    def _nothing_left(self) -> bool:
        return not self._items and not self._busy and not self._spool.pending and not self._adopted

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="epochstream-publisher", daemon=True)
                self._thread.start()

    def _drop(self, count: int, kind: str, message: str, identity: RunIdentity | None = None) -> None:
        """Count a loss: in the run's drop report (which logs the first of each kind), else logged once here."""
        self.dropped += count
        if identity is not None:
            identity.drops.add(kind, count, kind, message)
        else:
            self.notices.warn(f"drop-{kind}", message)

    # -- background side -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closing:
                try:
                    progressed = self._pass()
                except Exception as exc:  # noqa: BLE001 - a bug here must not take training down
                    self._busy = False
                    if self.notices.warn("pass", f"publisher error (carrying on): {exc!r}"):
                        log.debug("epochstream: publisher error", exc_info=True)
                    progressed = False
                    time.sleep(0.1)
                if not self._closing:
                    self._sleep(progressed)
        finally:
            self._shutdown()

    def _pass(self) -> bool:
        """One round: queue -> broker (or spool), then some of the spool -> broker. True if replay moved."""
        self._started_pass += 1
        current = self._started_pass
        if self._urgent:
            self._urgent = False
            self._link.retry_now()
            self._next_scan = 0.0
        self._busy = True
        events = self._take(MAX_BATCH)
        if events:
            self._send_or_spool(self._encode(events), current)
        self._busy = False
        if time.monotonic() >= self._next_scan:
            self._scan_orphans()
        progressed = self._replay(current)
        self._spool.sync_if_due()
        with self._pass_done:
            self._completed_pass = current
            self._pass_done.notify_all()
        return progressed

    def _take(self, limit: int) -> list[Queued]:
        items, out = self._items, []
        while items and len(out) < limit:
            out.append(items.popleft())
        return out

    def _encode(self, events: list[Queued]) -> list[Record]:
        records = []
        for draft in events:
            identity = identity_of(draft)
            try:
                event = built(draft)
                stream, seq_key = self._routes.of(event.run_id, identity)  # type: ignore[attr-defined]
                records.append(Record(stream, seq_key, event.seq, encode(event)))  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001
                self._drop(1, "encode", f"an event could not be encoded and was dropped: {exc!r}", identity)
        return records

    def _send_or_spool(self, records: list[Record], current: int) -> None:
        if not records:
            return
        direct = not self._spool.pending and not self._link.backing_off()
        if direct and self._link.deliver(records, current):
            return
        self._to_spool(records)

    def _to_spool(self, records: list[Record]) -> None:
        try:
            if self._spool.append(records):
                self.spooled += len(records)
                return
            kind, message = "spool_full", (f"the spool at {self.spool_dir} is full ({self.settings.spool_max_bytes} "
                                           "bytes, EPOCHSTREAM_SPOOL_MAX_BYTES): new events are dropped until the "
                                           "broker takes events again")
        except OSError as exc:
            kind, message = "spool_error", (f"cannot write the spool at {self.spool_dir} ({exc}): events the broker "
                                            "did not take are dropped")
        for seq_key, count in Counter(r.seq_key for r in records).items():
            self._drop(count, kind, message, self._routes.run_of(seq_key))

    def _scan_orphans(self) -> None:
        self._next_scan = time.monotonic() + ORPHAN_SCAN_S
        skip = {self._spool.owner, *(b.owner for b in self._adopted)}
        found = adopt_orphans(self.spool_dir, skip)
        if found:
            log.info("epochstream: delivering what %d earlier process(es) left in %s", len(found), self.spool_dir)
            self._adopted.extend(found)

    def _replay(self, current: int) -> bool:
        """Deliver spooled records, oldest owner first, for at most REPLAY_SLICE_S. True if any went out."""
        if self._link.backing_off():
            return False
        progressed, stop_at = False, time.monotonic() + REPLAY_SLICE_S
        while time.monotonic() < stop_at:
            source: Backlog | Spool
            if self._adopted:
                source = self._adopted[0]
            elif self._spool.pending:
                source = self._spool
            else:
                break
            records = source.peek(REPLAY_BATCH)
            if records:
                if not self._link.deliver(self._routes.rehomed(records), current):
                    break
                source.ack(len(records))
                if source is self._spool:
                    self._unspooled += len(records)
                progressed = True
            if isinstance(source, Backlog) and (source.empty or not records):
                self._release(source)
            elif not records:
                break
        return progressed

    def _release(self, backlog: Backlog) -> None:
        self._adopted.remove(backlog)
        if backlog.skipped_bytes:
            self.notices.warn("torn", f"skipped {backlog.skipped_bytes} bytes of a torn spool record in "
                                      f"{self.spool_dir} (a process died mid-write)")
        backlog.release(delete_lock=backlog.empty)

    def _sleep(self, progressed: bool) -> None:
        if self._items or self._urgent:
            return
        backlog = self._spool.pending or bool(self._adopted)
        if backlog and progressed and not self._link.down:
            return  # more to replay right away
        wait = POLL_S
        if backlog and self._link.down:
            wait = min(wait, max(self._link.retry_at - time.monotonic(), 0.0))
        self._wake.wait(wait)
        self._wake.clear()

    def _shutdown(self) -> None:
        """Leave nothing in memory: what the broker did not take goes to the spool for the next process."""
        try:
            self._busy = True
            leftover = self._encode(self._take(len(self._items)))
            if leftover:
                self._to_spool(leftover)
            self._busy = False
            self._spool.close()
            for backlog in list(self._adopted):
                self._release(backlog)
            self._link.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("epochstream: could not close the publisher cleanly: %r", exc)
        finally:
            self._busy = False
            self._closed = True

    def _after_fork_in_child(self) -> None:
        """A forked child (a DataLoader worker) gets a fresh, empty publisher: no thread, no parent's spool.

        The parent's spool and lock descriptors are closed here; the parent keeps its locks (a flock is held
        until every descriptor of it is closed). The parent's sockets are left alone.
        """
        self._spool.forget_inherited()
        for backlog in self._adopted:
            backlog.forget_inherited()
        self._start_lock = threading.RLock()
        self._reset_state()

