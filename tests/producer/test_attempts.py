"""Attempts of a run (producer.attempts): the seq a start begins at, refusal of a reused id, resumption, against
the pure rule and against a real Redis (the broker's seq mark)."""

from __future__ import annotations

import logging

import pytest

from producer import Publisher, start_run
from producer.attempts import fresh_id, plan_attempt, seq_floor
from producer.testing import RecordingPublisher, recording_run
from schemas.envelope import RUN_ID_PATTERN
from schemas.keys import Keys
from tests.producer.conftest import run_events

FLOOR = 1_800_000_000_000_000


def test_the_plan_for_each_kind_of_start():
    def plan(**kw):
        base = {"explicit": True, "resume": False, "mark": None, "known": True, "floor": FLOOR}
        return plan_attempt("r", **(base | kw))

    assert plan(explicit=False).seq_start == 0  # a fresh uuid: nothing to ask
    assert (plan().run_id, plan().seq_start, plan().warning) == ("r", 0, None)  # an explicit id nobody used
    refused = plan(mark=12)
    assert refused.run_id.startswith("r-") and refused.seq_start == 0 and "resume=True" in refused.warning
    assert plan(spool_busy=True).seq_start == FLOOR  # unseen spooled events here: never collide with them
    unknown = plan(known=False, why_unknown="connection refused")
    assert (unknown.run_id, unknown.seq_start, unknown.unchecked) == ("r", FLOOR, True)
    assert "connection refused" in unknown.warning
    assert plan(resume=True, mark=12).seq_start == FLOOR  # above the earlier attempt's seqs
    assert plan(resume=True, mark=FLOOR + 500).seq_start == FLOOR + 500  # ... and above the broker's mark
    assert plan(resume=True, known=False).seq_start == FLOOR and plan(resume=True).resume


def test_keys_and_ids():
    import re

    keys = Keys("ns", 4)
    assert Keys.run_seq_of(keys.attempt_seq("run-1", 42)) == keys.run_seq("run-1")
    assert Keys.run_seq_of(keys.run_seq("run-1")) == keys.run_seq("run-1")  # an older producer's record
    assert Keys.run_id_of(keys.attempt_seq("a:b.c", 7)) == "a:b.c"
    assert re.match(RUN_ID_PATTERN, fresh_id("x" * 128)) and len(fresh_id("x" * 128)) == 128
    assert seq_floor(1_700_000_000_123_456_789) == 1_700_000_000_123_456
    assert seq_floor() < 2**53  # exact in Lua's doubles


def test_reusing_an_id_without_resume_is_refused_with_a_fresh_id(settings, redis_client, caplog):
    publisher = Publisher(settings)
    with start_run("reuse", run_id="job-7", publisher=publisher) as first:
        first.log_epoch(0, {"train/loss": 1.0})
    assert publisher.flush(10)
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"), \
            start_run("reuse", run_id="job-7", publisher=publisher) as second:
        second.log_epoch(0, {"train/loss": 2.0})
    assert publisher.flush(10)
    assert second.run_id != "job-7" and second.run_id.startswith("job-7-")
    assert any("already has events" in r.getMessage() and second.run_id in r.getMessage() for r in caplog.records)
    assert [e.seq for e in run_events(redis_client, settings, "job-7")] == [1, 2, 3]  # untouched
    assert [e.seq for e in run_events(redis_client, settings, second.run_id)] == [1, 2, 3]
    publisher.close()


def test_a_resumed_attempt_lands_beside_the_first_and_nothing_is_skipped(settings, redis_client):
    publisher = Publisher(settings)
    with start_run("resume", run_id="job-8", publisher=publisher) as first:
        for epoch in range(5):
            first.log_epoch(epoch, {"train/loss": 1.0})
    with start_run("resume", run_id="job-8", publisher=publisher, resume=True) as second:
        for epoch in range(3, 6):
            second.log_epoch(epoch, {"train/loss": 0.5})
    assert publisher.flush(10)
    events = run_events(redis_client, settings, "job-8")
    assert len(events) == 7 + 5 and len({e.event_id for e in events}) == 12  # every event of both, once
    started = [e for e in events if e.type == "run_started"]
    assert [s.resume for s in started] == [False, True]
    assert started[1].seq > max(e.seq for e in events[:7])
    assert all(e.event_id == f"job-8:{e.seq}" for e in events)
    assert publisher.published == 12 and publisher.skipped == 0
    publisher.close()


def test_an_earlier_attempts_spool_still_lands_after_a_later_attempt_went_ahead(settings, redis_client, dead_url,
                                                                               tmp_path):
    """Attempt 1 spooled while the broker was away and its process is gone; attempt 2 resumes and delivers
    first. Attempt 1's events, delivered after, are not skipped: each attempt has its own mark."""
    down = Publisher(settings.model_copy(update={"redis_url": dead_url}))
    with start_run("late", run_id="job-9", publisher=down) as first:
        for epoch in range(4):
            first.log_epoch(epoch, {"train/loss": 1.0})
    assert down.close(0.5) is False  # left in the spool
    elsewhere = Publisher(settings.model_copy(update={"spool_dir": tmp_path / "another-host"}))
    with start_run("late", run_id="job-9", publisher=elsewhere, resume=True) as second:
        second.log_epoch(2, {"train/loss": 0.5})
    assert elsewhere.flush(10)
    assert len(run_events(redis_client, settings, "job-9")) == 3  # attempt 2 went ahead
    here = Publisher(settings)  # the first attempt's host comes back: its spool is delivered now
    assert here.flush(10)
    events = run_events(redis_client, settings, "job-9")
    assert len(events) == 3 + 6 and len({e.event_id for e in events}) == 9
    assert here.published == 6 and here.skipped == 0
    elsewhere.close()
    here.close()


def test_an_id_nobody_could_check_is_told_at_delivery_that_it_was_reused(settings, redis_client, dead_url, caplog):
    publisher = Publisher(settings)
    with start_run("unchecked", run_id="job-10", publisher=publisher) as first:
        first.log_epoch(0, {"train/loss": 1.0})
    assert publisher.flush(10)
    found = {"yet": False}
    later = Publisher(settings, url_resolver=lambda s: settings.redis_url if found["yet"] else dead_url)
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"):
        with start_run("unchecked", run_id="job-10", publisher=later) as second:
            second.log_epoch(0, {"train/loss": 2.0})
        assert second.run_id == "job-10" and second.seq_start > 0
        found["yet"] = True
        assert later.flush(10)
    assert any("already had events from another process" in r.getMessage() for r in caplog.records)
    assert len({e.event_id for e in run_events(redis_client, settings, "job-10")}) == 6  # nothing collided
    publisher.close()
    later.close()


def test_recording_runs_resume_and_refuse_as_the_broker_would(settings):
    rec = RecordingPublisher(settings)
    with recording_run(run_id="job-11", publisher=rec) as first:
        first.log_epoch(0, {"train/loss": 1.0})
    with recording_run(run_id="job-11", resume=True, publisher=rec) as second:
        second.log_epoch(0, {"train/loss": 0.5})
    with recording_run(run_id="job-11", publisher=rec) as third:
        pass
    assert [a.resume for a in rec.attempts if a.run_id == "job-11"] == [False, True]
    assert second.run_id == "job-11" and third.run_id.startswith("job-11-")
    assert len({e.event_id for e in rec.events}) == len(rec.events)


@pytest.mark.parametrize("resume", [False, True])
def test_start_run_never_raises_when_the_broker_cannot_be_asked(settings, dead_url, resume):
    publisher = Publisher(settings.model_copy(update={"redis_url": dead_url}))
    with start_run("down", run_id="job-12", publisher=publisher, resume=resume) as run:
        run.log_epoch(0, {"train/loss": 1.0})
    assert run.run_id == "job-12" and run.seq_start >= seq_floor() - 60_000_000
    publisher.close(0.1)
