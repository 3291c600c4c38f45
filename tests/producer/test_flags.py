"""Suspect series: the pure rule, the per-run watch, and what a run does with the flags."""

from __future__ import annotations

import logging
import math

from hypothesis import given
from hypothesis import strategies as st

from producer.flags import WINDOW, SeriesWatch, series_flag
from producer.testing import recording_run

NAN, INF = float("nan"), float("inf")


def kind(metric, values):
    flag = series_flag(metric, values)
    return flag.kind if flag else None


def test_series_flag_rules():
    assert kind("train/loss", [0.0] * WINDOW) == "all_zero"
    assert series_flag("train/loss", [0.0] * WINDOW).message == "train/loss: all zero over 5 epochs"
    assert kind("train/loss", [0.0] * (WINDOW - 1)) is None  # not yet 5 epochs
    assert kind("train/loss", [1.0] + [0.0] * WINDOW) == "all_zero"  # the last 5 count
    assert kind("val/loss", [0.7] * WINDOW) == "constant"
    assert series_flag("val/loss", [0.7] * WINDOW).message == "val/loss: constant (0.7) over 5 epochs"
    assert kind("learning_rate", [1e-3] * WINDOW) is None  # a fixed learning rate is fine
    assert kind("learning_rate", [0.0] * WINDOW) == "all_zero"  # a zero one is not
    assert kind("train/loss", [1.0, NAN]) == "nan"
    assert kind("train/loss", [NAN]) == "nan"
    assert kind("train/loss", [1.0, INF]) == "infinite"
    assert series_flag("train/loss", [-INF]).message == "train/loss: -infinite"
    assert kind("train/loss", [NAN, 1.0]) is None  # recovered
    assert kind("train/loss", [1.0, 0.9, 0.8, 0.7, 0.6]) is None
    assert kind("train/loss", []) is None


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(st.lists(st.lists(finite | st.just(0.0) | st.just(NAN), min_size=1, max_size=3), min_size=1, max_size=12))
def test_watch_agrees_with_the_pure_rule_on_every_epoch(epochs):
    """The watch skips values that cannot be suspect; that shortcut must never change an answer."""
    watch = SeriesWatch()
    history: dict[str, list[float]] = {}
    for values in epochs:
        metrics = {f"m{i}": v for i, v in enumerate(values)}
        got = {(f.metric, f.kind) for f in watch.update(metrics)}
        expected = set()
        for name, value in metrics.items():
            history.setdefault(name, []).append(value)
            flag = series_flag(name, history[name][-WINDOW:])
            if flag:
                expected.add((flag.metric, flag.kind))
        assert got == expected


def test_a_run_attaches_warnings_to_epochs_and_logs_each_once(caplog):
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"), recording_run() as run:
        for epoch in range(8):
            run.log_epoch(epoch, {"train/loss": 0.0, "val/loss": 1.0 / (epoch + 1),
                                  "val/accuracy": NAN if epoch >= 6 else 0.5 + epoch / 100})
    epochs = run.publisher.epochs
    assert [e.warnings for e in epochs[:4]] == [[]] * 4
    assert epochs[4].warnings == ["train/loss: all zero over 5 epochs"]
    assert epochs[7].warnings == ["train/loss: all zero over 5 epochs", "val/accuracy: NaN"]
    assert math.isnan(epochs[7].metrics["val/accuracy"])  # NaN is data: flagged, still sent
    logged = [r.getMessage() for r in caplog.records]
    assert sum("all zero" in m for m in logged) == 1
    assert sum("val/accuracy: NaN" in m for m in logged) == 1
    assert run.publisher.warnings.count("train/loss: all zero over 5 epochs") == 4
