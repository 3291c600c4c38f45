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


def test_a_bad_value_drops_alone_and_is_counted_logged_once_and_summarised(settings, caplog):
    """Invariant 8: a bad value costs only itself; every drop is counted, and said once per kind and at the end."""
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"), recording_run(settings=settings) as run:
        for epoch in range(3):
            run.log_epoch(epoch, {"train/loss": 1.0 + epoch, "acc@1": 0.9, "val/loss": None, "val/acc": "0.5",
                                  "grad": torch.ones(3), 7: 1.0}, samples=64)
    rec = run.publisher
    assert [e.epoch for e in rec.epochs] == [0, 1, 2]  # no epoch lost
    assert [e.seq for e in rec.events] == list(range(1, 6))
    assert [e.metrics for e in rec.epochs] == [{"train/loss": 1.0 + e, "acc_1": 0.9} for e in range(3)]
    assert rec.finished.drops.counts == {"renamed": 3, "missing": 3, "not_a_number": 6, "invalid_name": 3}
    assert rec.dropped == 12 and rec.drops == rec.finished.drops
    assert "'acc@1' renamed to 'acc_1'" in rec.drops.examples
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 5  # one per kind (4), then the summary
    assert all(run.run_id in m for m in warned)
    assert "12 dropped, 3 renamed" in warned[-1]


def test_an_event_that_cannot_be_built_is_counted_and_uses_no_seq(settings):
    with recording_run(settings=settings) as run:
        run.log_epoch(-1, {"train/loss": 1.0})  # no such epoch
        run.log_epoch(None, {"train/loss": 1.0})  # type: ignore[arg-type]
        run.log_epoch(0, None)  # type: ignore[arg-type]
        run.log_epoch(1, {"train/loss": 1.0}, samples=-3)  # the epoch goes, without its samples
        run.log_step(2**63, {"train/loss": 1.0})
        run.log_step(5, {"train/loss": 1.0}, epoch="one")  # type: ignore[arg-type]
        run.log_system(gpus=["not a sample"])  # type: ignore[list-item]
    rec = run.publisher
    assert [(e.type, e.seq) for e in rec.events] == [("run_started", 1), ("epoch", 2), ("step", 3),
                                                      ("run_finished", 4)]
    assert rec.epochs[0].samples is None and rec.steps[0].epoch is None
    assert rec.drops.counts == {"invalid_event": 5, "invalid_field": 2}


def test_metric_names_are_sanitised_to_the_documented_form():
    from producer.drafts import sanitised
    from schemas.envelope import METRIC_NAME_PATTERN

    assert sanitised("acc@1") == "acc_1"
    assert sanitised("top-1 acc") == "top-1_acc"
    assert sanitised("/loss") == "_/loss"
    assert sanitised("損失") == "__"
    assert sanitised("") is None
    long = sanitised("x" * 300 + "@")
    assert long == "x" * 128
    import re

    for name in ("acc@1", "-x", ".hidden", "a b c", "é", "x" * 500):
        assert re.match(METRIC_NAME_PATTERN, sanitised(name))


def test_too_many_metrics_keep_the_first_ones(settings):
    with recording_run(settings=settings) as run:
        run.log_epoch(0, {f"m{i}": float(i) for i in range(600)})
    rec = run.publisher
    assert len(rec.epochs[0].metrics) == 512 and "m511" in rec.epochs[0].metrics
    assert rec.drops.counts == {"too_many": 88}


def test_drops_ride_the_heartbeat_when_they_change(settings):
    with recording_run(settings=settings) as run:
        run.log_system(cpu_percent=1.0)  # nothing dropped yet: no report
        run.log_epoch(0, {"train/loss": None})
        run.log_system(cpu_percent=1.0)  # news: the report
        run.log_system(cpu_percent=1.0)  # no news
        run.log_epoch(1, {"train/loss": None})
        run.log_system(cpu_percent=1.0)
    reports = [e.drops for e in run.publisher.system]
    assert [r.counts if r else None for r in reports] == [None, {"missing": 1}, None, {"missing": 2}]
    assert run.publisher.finished.drops.counts == {"missing": 2}


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
