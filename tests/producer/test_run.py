"""Run lifecycle and logging calls, recorded through the real codec (producer.testing)."""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading

import pytest
import torch

from producer.run import outcome, start_run
from producer.testing import RecordingPublisher, recording_run


def test_a_completed_run(settings):
    with recording_run("proj", "name", {"lr": 0.1}, ["t"], settings=settings) as run:
        run.log_epoch(0, {"train/loss": 1.0, "val/accuracy": 0.5, "custom/thing": 3}, samples=128)
        run.log_epoch(1, {"train/loss": torch.tensor(0.5), "val/loss": float("inf")}, samples=torch.tensor(128))
    rec = run.publisher
    assert [e.type for e in rec.events] == ["run_started", "epoch", "epoch", "run_finished"]
    assert [e.seq for e in rec.events] == [1, 2, 3, 4]
    assert [e.event_id for e in rec.events] == [f"{run.run_id}:{n}" for n in range(1, 5)]
    assert rec.started.project == "proj" and rec.started.name == "name" and rec.started.tags == ["t"]
    assert rec.epochs[0].metrics == {"train/loss": 1.0, "val/accuracy": 0.5, "custom/thing": 3.0}
    assert rec.epochs[1].metrics["train/loss"] == 0.5 and math.isinf(rec.epochs[1].metrics["val/loss"])
    assert rec.epochs[1].samples == 128
    assert rec.finished.status == "completed" and rec.finished.exit_code == 0 and rec.finished.error is None
    assert rec.finished.duration_s >= 0


def test_a_failing_run_keeps_the_whole_error_and_reraises(settings):
    message = "shard 17 is corrupt: " + "x" * 400 + " (the end)"
    with pytest.raises(KeyError) as raised, recording_run(settings=settings) as run:
        run.log_epoch(0, {"train/loss": 1.0})
        try:
            {}["missing"]
        except KeyError as first:
            raise KeyError(message) from first
    finished = run.publisher.finished
    assert raised.value.args == (message,)
    assert finished.status == "failed" and finished.exit_code == 1
    assert finished.error == f"KeyError: {message!r}"
    assert len(finished.error) > 160 and message in finished.traceback
    assert "The above exception was the direct cause" in finished.traceback  # chained causes kept
    assert "'missing'" in finished.traceback


def test_keyboard_interrupt_is_interrupted(settings):
    with pytest.raises(KeyboardInterrupt), recording_run(settings=settings) as run:
        raise KeyboardInterrupt
    finished = run.publisher.finished
    assert finished.status == "interrupted" and finished.exit_code == 130


def test_outcome_rules():
    assert outcome(None, None, None) == ("completed", None, None, 0)
    assert outcome(SystemExit, SystemExit(0), None)[0] == "completed"
    status, error, _, code = outcome(SystemExit, SystemExit(3), None)
    assert (status, error, code) == ("failed", "SystemExit: 3", 3)
    status, error, _, code = outcome(None, None, None, signal.SIGTERM)
    assert (status, error, code) == ("interrupted", "interrupted by SIGTERM", 143)
    exc = SystemExit(0)
    status, error, _, code = outcome(SystemExit, exc, exc.__traceback__, signal.SIGTERM)
    assert status == "interrupted" and error.startswith("interrupted by SIGTERM: SystemExit") and code == 143


def test_bad_values_are_dropped_and_logged_once_and_seq_has_no_gaps(settings, caplog):
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"), recording_run(settings=settings) as run:
        for epoch in range(3):
            run.log_epoch(epoch, {"train/loss": "high"})  # a string is not a metric
            run.log_epoch(epoch, {"train/loss": torch.ones(3)})  # nor is a vector
            run.log_epoch(epoch, {"not a name!": 1.0})  # invalid metric name
            run.log_epoch(epoch, {"train/loss": 1.0})
    rec = run.publisher
    assert [e.epoch for e in rec.epochs] == [0, 1, 2]
    assert [e.seq for e in rec.events] == list(range(1, 6))  # dropped events used no seq
    messages = [r.getMessage() for r in caplog.records if "not published" in r.getMessage()]
    assert len(messages) == 3  # one per kind of problem, not one per call
    assert any("'high'" in m for m in messages) and any("'not a name!'" in m for m in messages)


def test_nothing_is_published_after_the_finish(settings):
    with recording_run(settings=settings) as run:
        pass
    run.log_epoch(0, {"train/loss": 1.0})
    run.log_system(cpu_percent=1.0)
    run.finish("failed")  # a second finish does nothing
    assert [e.type for e in run.publisher.events] == ["run_started", "run_finished"]
    assert run.publisher.finished.status == "completed"


def test_seq_follows_queue_order_across_threads(settings):
    """The sampler thread and the training thread publish at once: seq order must be publish order."""
    publisher = RecordingPublisher(settings)
    run = start_run("threads", publisher=publisher)

    def system_events():
        for _ in range(500):
            run.log_system(cpu_percent=1.0)

    thread = threading.Thread(target=system_events)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a seq taken outside the lock shows
    try:
        thread.start()
        for epoch in range(500):
            run.log_epoch(epoch, {"train/loss": 1.0})
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    run.finish()
    assert [e.seq for e in publisher.events] == list(range(1, 1003))


def test_start_run_never_raises_on_bad_settings(monkeypatch, caplog):
    monkeypatch.setenv("EPOCHSTREAM_PARTITIONS", "not a number")
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"), start_run("p") as run:
        run.log_epoch(0, {"train/loss": 1.0})
    assert any("training goes on" in r.getMessage() for r in caplog.records)


def test_config_objects_of_all_kinds(settings):
    import argparse

    namespace = argparse.Namespace(lr=0.1, layers=[1, 2])
    with recording_run(config=namespace, settings=settings) as run:
        pass
    assert run.publisher.started.config == {"lr": 0.1, "layers": [1, 2]}
