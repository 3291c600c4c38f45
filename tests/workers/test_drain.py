"""Draining on a real Redis: exactly once by event_id, poison to the DLQ, reclaim, max deliveries, replay."""

from __future__ import annotations

import json

import orjson

from epochstream.layout import DataLayout
from schemas.codec import MAX_PAYLOAD_BYTES
from schemas.keys import PAYLOAD_FIELD, Keys, partition_of
from schemas.read_models import RunSummary
from tests.draining import drain_all
from tests.readmodel import content, epoch_numbers
from tests.readmodel import summary as stored_summary
from tests.workers.helpers import publish_runs
from workers.catalog import query
from workers.dead_letters import DeadLetter, list_dead_letters, replay
from workers.drain import drain
from workers.log_reader import count_by_id, read_log


def all_entries(client, settings):
    keys = Keys(settings.namespace, settings.partitions)
    return [(s, eid, f) for s in keys.all_streams() for eid, f in client.xrange(s)]


def test_drain_stores_once_and_redelivery_changes_nothing(settings, redis_client):
    settings = settings.model_copy(update={"drain_batch": 25})
    publish_runs(settings, runs=3, epochs=20, system_every=5)
    entries = all_entries(redis_client, settings)
    assert drain_all(redis_client, settings) == (len(entries), 0)
    layout = DataLayout(settings.data_dir)
    summary = RunSummary.model_validate(stored_summary(settings, "r1"))
    assert (summary.status, summary.epochs, summary.events, summary.last_epoch) == ("completed", 20, 26, 19)
    assert summary.best_epoch == 10 and summary.best_metric == "val/loss"
    assert epoch_numbers(settings, "r1") == list(range(20))
    before = content(settings)

    # The same payloads again (a producer's spool replay, a redelivery): stored again physically,
    # counted once everywhere, and the projections do not change at all.
    pipe = redis_client.pipeline()
    for stream, _, fields in entries:
        pipe.xadd(stream, fields)
    pipe.execute()
    assert drain_all(redis_client, settings) == (len(entries), 0)
    assert max(count_by_id(layout, "epoch").values()) == 2
    assert read_log(layout, "epoch").num_rows == 60
    assert stored_summary(settings, "r1")["version"] == summary.version
    assert content(settings) == before
    assert query(settings, "SELECT count(*) AS n FROM epochs").to_pylist() == [{"n": 60}]
    assert query(settings, "SELECT count(*) AS n FROM system").to_pylist() == [{"n": 12}]
    assert query(settings, "SELECT count(*) AS n FROM epoch_metrics").to_pylist() == [{"n": 120}]
    runs = query(settings, "SELECT run_id, events FROM runs ORDER BY run_id").to_pylist()
    assert runs == [{"run_id": f"r{i}", "events": 26} for i in range(3)]


def good_event(run_id, seq, epoch):
    return orjson.dumps({"type": "epoch", "version": 2, "event_id": f"{run_id}:{seq}", "run_id": run_id,
                         "seq": seq, "ts": "2026-01-01T00:00:00Z", "epoch": epoch, "metrics": {"train/loss": 1.0}})


POISON = {
    "bad json": b"{not json",
    "wrong types": orjson.dumps({"type": "epoch", "version": 2, "event_id": "x:1", "run_id": "x", "seq": "one",
                                 "ts": "2026-01-01T00:00:00Z", "epoch": 0, "metrics": {"train/loss": "low"}}),
    "unknown version": orjson.dumps({"type": "epoch", "version": 99, "event_id": "x:2", "run_id": "x", "seq": 2,
                                     "ts": "2026-01-01T00:00:00Z", "epoch": 0}),
    "unknown type": orjson.dumps({"type": "gradient", "version": 1, "event_id": "x:3"}),
    "oversized": b'{"type": "epoch", "pad": "' + b"x" * (MAX_PAYLOAD_BYTES + 10) + b'"}',
    "no payload field": None,
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "ts beyond UTC range": orjson.dumps({"type": "epoch", "version": 2, "event_id": "x:4", "run_id": "x", "seq": 4,
                                         "ts": "9999-12-31T23:59:59-01:00", "epoch": 0}),
}


def test_poison_is_dead_lettered_with_reasons_while_good_events_flow(settings, redis_client):
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream_for_run("good")
    pipe = redis_client.pipeline()
    for seq in range(1, 41):
        pipe.xadd(stream, {PAYLOAD_FIELD: good_event("good", seq, seq)})
        if seq % 5 == 0:  # every kind of poison once, in order
            name = list(POISON)[seq // 5 - 1]
            pipe.xadd(stream, {PAYLOAD_FIELD: POISON[name]} if POISON[name] else {b"other": b"1"})
    pipe.execute()
    published = redis_client.xlen(stream)
    stored, dead = drain_all(redis_client, settings)
    assert (stored, dead) == (40, len(POISON))
    assert published == stored + dead
    reasons = [d.reason for d in list_dead_letters(redis_client, settings)]
    assert "payload is not JSON" in reasons[0]
    assert "seq" in reasons[1] and "metrics.train/loss" in reasons[1]
    assert "version 99 is not supported" in reasons[2] and "dlq replay" in reasons[2]
    assert "unknown event type 'gradient'" in reasons[3]
    assert "exceeds" in reasons[4]
    assert "not JSON" in reasons[5]  # no payload field
    assert "not JSON" in reasons[6]  # nested deeper than Python's stack
    assert "ts:" in reasons[7] and "out of range" in reasons[7]
    letters = query(settings, "SELECT reason, payload FROM dead_letters").to_pylist()
    assert sorted(r["reason"] for r in letters) == sorted(reasons)
    assert b"{not json" in [r["payload"] for r in letters]
    assert read_log(DataLayout(settings.data_dir), "epoch").num_rows == 40
    assert redis_client.xpending(stream, keys.group)["pending"] == 0


def test_dead_consumer_entries_are_reclaimed_and_a_good_one_delivered_too_often_is_stored(settings, redis_client):
    """Delivery counts say only that drains died on a batch, not whose fault it was: an entry delivered more
    than max_deliveries times is processed alone, and a good one is stored, never dead-lettered."""
    settings = settings.model_copy(update={"claim_idle_ms": 0, "max_deliveries": 2})
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream_for_run("g")
    for seq in range(1, 6):
        redis_client.xadd(stream, {PAYLOAD_FIELD: good_event("g", seq, seq)})
    partition = keys.all_streams().index(stream)
    drain(redis_client, settings.model_copy(update={"drain_batch": 1}), partition, max_seconds=0)  # creates group
    # A consumer reads two entries and dies; one of them it had already failed on once before.
    redis_client.xreadgroup(keys.group, "dead-1", {stream: ">"}, count=2)
    first = redis_client.xpending_range(stream, keys.group, "-", "+", 1)[0]["message_id"]
    redis_client.xclaim(stream, keys.group, "dead-2", 0, [first])  # second delivery of the first entry
    result = drain(redis_client, settings, partition)
    assert result.reclaimed == 2
    assert (result.stored, result.dead_lettered) == (5, 0)
    assert list_dead_letters(redis_client, settings) == []
    assert redis_client.xpending(stream, keys.group)["pending"] == 0
    assert redis_client.hlen(keys.solo_attempts(partition)) == 0  # its solo attempt went through: forgotten
    assert sorted(read_log(DataLayout(settings.data_dir), "epoch").column("epoch").to_pylist()) == [1, 2, 3, 4, 5]


def test_dead_letters_replay_stores_once(settings, redis_client):
    """After a fix, replay re-ingests a dead letter; it is stored exactly once."""
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream_for_run("g")
    partition = keys.all_streams().index(stream)
    redis_client.xadd(stream, {PAYLOAD_FIELD: good_event("g", 1, 1)})
    redis_client.xadd(keys.dlq, DeadLetter(stream, "0-1", "an older worker refused it", good_event("g", 2, 2), 1,
                                           "2026-01-01T00:00:00+00:00").fields())
    assert replay(redis_client, settings).replayed == 1
    assert list_dead_letters(redis_client, settings) == []
    assert drain(redis_client, settings, partition).stored == 2
    assert replay(redis_client, settings).replayed == 0
    assert sorted(read_log(DataLayout(settings.data_dir), "epoch").column("epoch").to_pylist()) == [1, 2]


def test_replay_keeps_what_still_fails(settings, redis_client):
    keys = Keys(settings.namespace, settings.partitions)
    redis_client.xadd(keys.stream(0), {PAYLOAD_FIELD: POISON["unknown version"]})
    drain_all(redis_client, settings)
    result = replay(redis_client, settings)
    assert result.replayed == 0
    assert "version 99" in result.still_failing[0][1]
    assert len(list_dead_letters(redis_client, settings)) == 1


def test_valid_event_that_parquet_cannot_hold_is_dead_lettered_alone(settings, redis_client):
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream_for_run("big")
    huge = orjson.loads(good_event("big", 2, 2))
    huge["seq"], huge["event_id"] = 2**63, f"big:{2**63}"  # valid for the contract, one more than int64 holds
    for payload in (good_event("big", 1, 1), json.dumps(huge).encode(), good_event("big", 3, 3)):
        redis_client.xadd(stream, {PAYLOAD_FIELD: payload})
    assert drain_all(redis_client, settings) == (2, 1)
    assert "cannot be stored in Parquet" in list_dead_letters(redis_client, settings)[0].reason
    assert sorted(read_log(DataLayout(settings.data_dir), "epoch").column("epoch").to_pylist()) == [1, 3]


def test_any_decoding_failure_dead_letters_that_entry_alone(settings, redis_client, monkeypatch):
    """Decoding is pure, so an unexpected exception from it (a bug, a library's surprise) repeats on every
    delivery: that entry goes to the DLQ at once with the exception as its reason; the batch flows."""
    import workers.batch

    real = workers.batch.decode

    def decode(payload):
        if b"boom" in payload:
            raise RuntimeError("boom")
        return real(payload)

    monkeypatch.setattr(workers.batch, "decode", decode)
    stream = Keys(settings.namespace, settings.partitions).stream_for_run("ok")
    for payload in (good_event("ok", 1, 1), b'{"boom": 1}', good_event("ok", 2, 2)):
        redis_client.xadd(stream, {PAYLOAD_FIELD: payload})
    assert drain_all(redis_client, settings) == (2, 1)
    assert list_dead_letters(redis_client, settings)[0].reason == "cannot be decoded: RuntimeError('boom')"


def test_an_entry_in_another_partitions_stream_is_dead_lettered_and_replays_home(settings, redis_client):
    # Applied by the wrong drain, its run would have two writers racing each other; replay puts it home.
    keys = Keys(settings.namespace, settings.partitions)
    home = partition_of("stray", settings.partitions)
    wrong = (home + 1) % settings.partitions
    redis_client.xadd(keys.stream(wrong), {PAYLOAD_FIELD: good_event("stray", 1, 0)})
    assert drain_all(redis_client, settings) == (0, 1)
    reason = list_dead_letters(redis_client, settings)[0].reason
    assert f"belongs to partition {home} of {settings.partitions}" in reason and f"partition {wrong}'s" in reason
    assert replay(redis_client, settings).replayed == 1
    assert drain_all(redis_client, settings) == (1, 0)
    assert read_log(DataLayout(settings.data_dir), "epoch").column("run_id").to_pylist() == ["stray"]
