"""The publisher against a real Redis: delivery, exactly once, and what happens when the broker is away."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from epochstream.errors import BrokerUnavailable
from producer import Publisher, start_run
from producer.delivery import read_mark, send
from producer.spool import Record, parse
from schemas.codec import decode
from schemas.keys import Keys
from tests.producer.conftest import run_events, stream_entries


def epochs_of(events) -> list[int]:
    return [e.epoch for e in events if e.type == "epoch"]


def test_events_reach_the_runs_partition_in_order(settings, redis_client):
    publisher = Publisher(settings)
    with start_run("p", publisher=publisher) as run:
        for epoch in range(50):
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=10)
    assert publisher.flush(10)
    events = run_events(redis_client, settings, run.run_id)
    assert [e.type for e in events] == ["run_started"] + ["epoch"] * 50 + ["run_finished"]
    assert [e.seq for e in events] == list(range(1, 53))
    assert len({e.event_id for e in events}) == 52
    stream = Keys(settings.namespace, settings.partitions).stream_for_run(run.run_id)
    assert redis_client.xlen(stream) == 52  # all in the run's own partition
    assert publisher.published == 52 and publisher.spooled == 0 and publisher.dropped == 0
    publisher.close()


def test_a_batch_sent_twice_lands_once(settings, redis_client):
    """A lost reply makes the publisher resend; the broker side skips what it already has."""
    keys = Keys(settings.namespace, settings.partitions)
    records = [Record(keys.stream_for_run("r1"), keys.run_seq("r1"), seq, f'{{"seq": {seq}}}'.encode())
               for seq in range(1, 11)]
    first = send(redis_client, records[:6])
    assert (first.added, first.skipped, first.rejected, first.retry) == (6, 0, [], None)
    again = send(redis_client, records)  # 1..6 again, plus 7..10
    assert (again.added, again.skipped) == (4, 6)
    assert send(redis_client, records[3:5]).added == 0
    entries = redis_client.xrange(keys.stream_for_run("r1"))
    assert [fields[b"e"] for _, fields in entries] == [r.payload for r in records]
    assert read_mark(redis_client, keys.run_seq("r1")) == 10


def test_a_rejected_run_does_not_hold_back_the_others(settings, redis_client):
    """An error reply about one run's records (here: its seq key is the wrong type) rejects that run's
    chunk for good; the other runs in the same round trip are delivered."""
    keys = Keys(settings.namespace, settings.partitions)
    redis_client.hset(keys.run_seq("bad"), "not", "a string")
    records = [Record(keys.stream_for_run(run), keys.run_seq(run), 1, run.encode()) for run in ("ok1", "bad", "ok2")]
    result = send(redis_client, records)
    assert result.retry is None and result.added == 2
    assert len(result.rejected) == 1 and result.rejected[0][:2] == (keys.run_seq("bad"), 1)
    assert "WRONGTYPE" in result.rejected[0][2]
    landed = [fields[b"e"] for _, fields in stream_entries_raw(redis_client, keys)]
    assert sorted(landed) == [b"ok1", b"ok2"]


def stream_entries_raw(client, keys: Keys):
    return [entry for stream in keys.all_streams() for entry in client.xrange(stream)]


def broker_found_later(settings):
    """A URL resolver that says "no broker" (as with no URL and no `epochstream up`) until the event is set."""
    found = threading.Event()

    def resolver(_settings):
        if not found.is_set():
            raise BrokerUnavailable("no broker: set EPOCHSTREAM_REDIS_URL")
        return settings.redis_url

    return found, resolver


def test_broker_unresolvable_at_start_then_found(settings, redis_client, caplog):
    """No EPOCHSTREAM_REDIS_URL and no `epochstream up`: spool, say so once, deliver once there is one."""
    found, resolver = broker_found_later(settings)
    publisher = Publisher(settings, url_resolver=resolver)
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"):
        run = start_run("p", publisher=publisher)
        for epoch in range(20):
            run.log_epoch(epoch, {"train/loss": 1.0})
        assert publisher.flush(5) is False  # returns once the attempt failed, not after 5 s
        run.finish()
    assert publisher.spooled > 0 and run_events(redis_client, settings, run.run_id) == []
    assert len([r for r in caplog.records if "broker unavailable" in r.getMessage()]) == 1
    found.set()
    assert publisher.flush(10)
    events = run_events(redis_client, settings, run.run_id)
    assert [e.seq for e in events] == list(range(1, 23))
    assert not list(publisher.spool_dir.glob("*.seg"))
    publisher.close()
    assert list(publisher.spool_dir.iterdir()) == []


def io_threads(monkeypatch) -> set[int]:
    """The threads that talk to the broker (connect, agree, send) or write the spool from now on. A caller
    whose thread is never among them never waits on the broker or the disk, however slow those are (what
    that costs in wall time is measured in `bench/producer_overhead.py`, not asserted here)."""
    import producer.link
    from producer.spool.writer import Spool

    seen: set[int] = set()

    def watched(function):
        def call(*args, **kwargs):
            seen.add(threading.get_ident())
            return function(*args, **kwargs)
        return call

    for name in ("send", "client_for", "agree"):
        monkeypatch.setattr(producer.link, name, watched(getattr(producer.link, name)))
    monkeypatch.setattr(Spool, "append", watched(Spool.append))
    return seen


def test_the_1000_epoch_run_survives_a_broker_restart(own_server, settings, redis_client, monkeypatch):
    """Done-when: Redis stops for part of the run and restarts on the same port; the stream then holds
    exactly the 1,000 epochs, in seq order, no duplicates, and the loop never saw an exception nor did
    any broker or spool I/O itself."""
    settings = settings.model_copy(update={"redis_url": own_server.url})
    publisher = Publisher(settings)
    errors = []
    threads = io_threads(monkeypatch)
    run = start_run("restart", publisher=publisher)
    for epoch in range(1000):
        try:
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1), "val/loss": 2.0 / (epoch + 1)}, samples=64)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)
        if epoch == 250:
            own_server.stop()
        if epoch == 700:
            own_server.start()
        time.sleep(0.001)
    run.finish()
    assert errors == []
    assert publisher.flush(30)
    assert publisher.spooled > 0  # the outage really was spooled through

    client = own_server_client(own_server)
    events = run_events(client, settings, run.run_id)
    epochs = epochs_of(events)
    assert len(epochs) == 1000 and epochs == list(range(1000))
    assert [e.seq for e in events] == list(range(1, 1003))  # run_started, 1000 epochs, run_finished
    assert len({e.event_id for e in events}) == len(events)
    assert threads and threading.get_ident() not in threads  # the I/O happened, never on the caller's thread
    publisher.close()
    client.close()


def own_server_client(server):
    import redis

    return redis.Redis.from_url(server.url)


class SilentServer:
    """Accepts connections and reads, never answers: a broker that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_a_hanging_broker_never_blocks_a_publish(settings, redis_client, monkeypatch):
    """A broker that accepts and never answers: every attempt times out on the publisher's thread, none on
    the caller's, and all 300 epochs arrive once it answers."""
    silent = SilentServer()
    threads = io_threads(monkeypatch)
    hanging = threading.Event()
    hanging.set()
    publisher = Publisher(settings.model_copy(update={"publish_timeout_s": 1.0}),
                          url_resolver=lambda s: silent.url if hanging.is_set() else settings.redis_url)
    run = start_run("hang", publisher=publisher)
    for epoch in range(300):
        run.log_epoch(epoch, {"train/loss": 1.0})
        time.sleep(0.005)
    publisher.flush(3)  # returns once an attempt on the hanging broker has timed out
    assert publisher.errors["TIMEOUT"] >= 1 and publisher.spooled > 0  # it hung, and the events were kept
    assert threads and threading.get_ident() not in threads  # no attempt was made on the caller's thread
    hanging.clear()
    run.finish()
    assert publisher.flush(15)
    assert epochs_of(run_events(redis_client, settings, run.run_id)) == list(range(300))
    publisher.close()
    silent.close()


def test_a_full_queue_drops_and_says_so_once(settings, caplog):
    def slow_resolver(_settings):
        time.sleep(0.5)
        raise BrokerUnavailable("slow")

    publisher = Publisher(settings, url_resolver=slow_resolver, queue_size=10)
    run = start_run("q", publisher=publisher)
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"):
        for epoch in range(200):
            run.log_epoch(epoch, {"train/loss": 1.0})
        run.finish()
    assert publisher.dropped > 100
    assert run.drops.counts["queue_full"] == publisher.dropped  # counted in the run's drop report
    said = [r.getMessage() for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(said) == 2  # when it began, and in the summary at the run's end
    assert f"queue_full {publisher.dropped}" in said[1]
    publisher.close(0.1)


def test_a_full_spool_drops_with_one_clear_warning(settings, dead_url, caplog):
    settings = settings.model_copy(update={"redis_url": dead_url, "spool_max_bytes": 4096})
    publisher = Publisher(settings)
    run = start_run("full", publisher=publisher)
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"):
        for epoch in range(200):
            run.log_epoch(epoch, {"train/loss": 1.0, "val/loss": 2.0})
            if epoch % 20 == 0:
                publisher.flush(1)
        run.finish()
        publisher.flush(1)
    full = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 2 and "EPOCHSTREAM_SPOOL_MAX_BYTES" in full[0]  # when it began, and in the run's summary
    assert "spool_full" in full[1]
    assert publisher.dropped > 0 and publisher.spooled > 0
    assert run.drops.counts == {"spool_full": publisher.dropped}
    assert sum(p.stat().st_size for p in publisher.spool_dir.glob("*.seg")) <= 4096
    publisher.close(0.1)


def test_new_events_queue_behind_spooled_ones(settings, redis_client):
    """While anything is spooled, fresh events go behind it: the stream order is the seq order."""
    up, resolver = broker_found_later(settings)
    publisher = Publisher(settings, url_resolver=resolver)
    runs = [start_run("order", publisher=publisher) for _ in range(3)]
    for epoch in range(300):
        for run in runs:
            run.log_epoch(epoch, {"train/loss": 1.0})
        if epoch == 100:
            publisher.flush(2)  # the first part is certainly spooled
            up.set()
    for run in runs:
        run.finish()
    assert publisher.flush(20)
    for run in runs:
        events = run_events(redis_client, settings, run.run_id)
        assert [e.seq for e in events] == list(range(1, 303))
    publisher.close()


def test_nothing_raises_into_the_caller(settings, dead_url):
    """Bad input and a dead broker: every call returns, each bad value or event is counted where it belongs,
    and exactly the good rest is kept (spooled, in seq order, a seq used only by what went out)."""
    publisher = Publisher(settings.model_copy(update={"redis_url": dead_url}))
    run = start_run("", publisher=publisher)  # an empty project is invalid: run_started is dropped, not raised
    run.log_epoch(-1, {"train/loss": 1.0})  # negative epoch: invalid, dropped
    run.log_epoch(0, {"bad name with spaces": 1.0})  # kept, renamed
    run.log_epoch(1, {"train/loss": "0.5"})  # a string is not a metric: the value goes, the epoch stays
    run.log_epoch(2, None)  # type: ignore[arg-type]
    run.log_epoch(3, {"train/loss": 1.0})
    run.log_system(gpus=["not a sample"])  # type: ignore[list-item]
    run.finish()
    run.log_epoch(4, {"train/loss": 1.0})  # after run_finished: dropped
    other = start_run("p", tags=5, config=object(), publisher=publisher)  # type: ignore[arg-type]
    other.finish()
    assert publisher.close(0.1) is False  # the broker is dead: everything kept is in the spool
    publisher.publish(object())  # type: ignore[arg-type]

    assert run.drops.counts == {"invalid_event": 4, "renamed": 1, "not_a_number": 1, "after_finish": 1}
    assert other.drops.counts == {}  # bad tags cost only its run_started
    assert publisher.dropped == 1 and publisher.spooled == 5  # the publish after close; the good events
    spooled = [decode(record.payload) for segment in sorted(publisher.spool_dir.glob("*.seg"))
               for record, _ in parse(segment.read_bytes(), 0).records]
    ours = [(e.type, e.seq, getattr(e, "epoch", None), getattr(e, "metrics", None))
            for e in spooled if e.run_id == run.run_id]
    assert ours == [("epoch", 1, 0, {"bad_name_with_spaces": 1.0}), ("epoch", 2, 1, {}),
                    ("epoch", 3, 3, {"train/loss": 1.0}), ("run_finished", 4, None, None)]
    assert [(e.type, e.seq) for e in spooled if e.run_id == other.run_id] == [("run_finished", 1)]


def test_close_leaves_undelivered_events_for_the_next_publisher(settings, dead_url, redis_client):
    down = Publisher(settings.model_copy(update={"redis_url": dead_url}))
    run = start_run("handover", publisher=down)
    for epoch in range(30):
        run.log_epoch(epoch, {"train/loss": 1.0})
    run.finish()
    assert down.close(0.5) is False
    assert list(down.spool_dir.glob("*.seg"))

    up = Publisher(settings)  # same spool directory, a broker that answers
    assert up.flush(10)
    assert [e.seq for e in run_events(redis_client, settings, run.run_id)] == list(range(1, 33))
    assert list(up.spool_dir.glob("*.seg")) == []
    up.close()


@pytest.mark.parametrize("events", [1, 2500])
def test_flush_returns_true_only_when_all_is_in(settings, redis_client, events):
    publisher = Publisher(settings)
    run = start_run("flush", publisher=publisher)
    for epoch in range(events):
        run.log_epoch(epoch, {"train/loss": 1.0})
    run.finish()
    assert publisher.flush(20)
    assert len(stream_entries(redis_client, settings)) == events + 2
    publisher.close()


def test_a_forked_child_starts_empty_and_leaves_the_parents_spool_alone(settings, dead_url):
    """DataLoader workers are forked from the training process: they must not share its publisher."""
    import os

    from producer.spool import adopt_orphans

    publisher = Publisher(settings.model_copy(update={"redis_url": dead_url}))
    run = start_run("fork", publisher=publisher)
    run.log_epoch(0, {"train/loss": 1.0})
    publisher.flush(2)  # spooled: the parent holds its spool lock
    parent_owner = publisher._spool.owner
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 0
        try:
            if publisher._thread is not None or publisher._items or publisher._spool.owner == parent_owner:
                code = 1
            elif adopt_orphans(publisher.spool_dir, skip=set()):  # the parent is alive: nothing to adopt
                code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert adopt_orphans(publisher.spool_dir, skip=set()) == []  # the child closing its copies freed nothing
    run.finish()
    publisher.close(0.1)
