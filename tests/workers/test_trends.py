"""Trend flags on synthetic curves: the pure functions, directly and with hypothesis."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.read_models import RunSummary, effective_status
from schemas.trends import (
    EpochRow,
    best_epoch,
    default_metric,
    epochs_since_improvement,
    is_diverging,
    is_overfitting,
    is_plateaued,
    recommendation,
    suspect_metrics,
)

NAN = float("nan")


def curve(train, val=None, **extra):
    rows = []
    for i, t in enumerate(train):
        metrics = {"train/loss": t}
        if val is not None:
            metrics["val/loss"] = val[i]
        for name, values in extra.items():
            metrics[name.replace("__", "/")] = values[i]
        rows.append(EpochRow(i, metrics))
    return rows


CLEAN = curve([1 / (e + 1) for e in range(20)], [1.2 / (e + 1) + 0.01 for e in range(20)],
              val__accuracy=[0.5 + e / 50 for e in range(20)], learning_rate=[0.1] * 20)
OVERFIT = curve([1 / (e + 1) for e in range(12)], [1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.46, 0.5, 0.55, 0.6, 0.66, 0.7])
PLATEAU = curve([1.0, 0.5] + [0.4] * 10, [1.0, 0.6] + [0.5, 0.50001, 0.5, 0.50002, 0.5, 0.5, 0.50001, 0.5, 0.5, 0.5])
DIVERGE = curve([1.0, 0.5, 0.4, 3.0, 50.0], [1.0, 0.6, 0.5, 4.0, 90.0])
NAN_LOSS = curve([1.0, 0.5, NAN], [1.0, 0.6, NAN])


def test_clean_convergence_says_continue():
    flags = recommendation(CLEAN)
    assert best_epoch(CLEAN).epoch == 19
    assert epochs_since_improvement(CLEAN) == 0
    assert not (flags.is_plateaued or flags.is_overfitting or flags.is_diverging)
    assert flags.suspect_metrics == {}  # a constant learning rate is not suspect
    assert flags.recommendation == "continue"
    assert "epoch 19" in flags.reason


def test_overfitting_recommends_the_best_checkpoint():
    assert is_overfitting(OVERFIT)
    assert not is_overfitting(CLEAN)
    flags = recommendation(OVERFIT)
    assert flags.recommendation == "use_checkpoint"
    assert flags.recommendation_epoch == 5
    assert "epochs 8-11" in flags.reason and "val/loss rose" in flags.reason


def test_plateau_recommends_stopping_with_patience_and_min_delta():
    assert is_plateaued(PLATEAU, patience=5, min_delta=1e-3)
    assert not is_plateaued(PLATEAU, patience=20, min_delta=1e-3)
    assert epochs_since_improvement(PLATEAU, min_delta=1e-3) == 9
    assert epochs_since_improvement(PLATEAU, min_delta=0.0) == 9  # 0.5 at epoch 2 is never beaten
    flags = recommendation(PLATEAU, min_delta=1e-3)
    assert flags.recommendation == "stop_early"
    assert flags.recommendation_epoch == 2
    assert "9 epochs" in flags.reason


def test_divergence_by_growth_and_by_nan():
    assert is_diverging(DIVERGE)
    assert is_diverging(NAN_LOSS)
    assert not is_diverging(CLEAN)
    flags = recommendation(NAN_LOSS)
    assert flags.recommendation == "investigate"
    assert "nan at epoch 2" in flags.reason
    assert best_epoch(NAN_LOSS).epoch == 1  # NaN never wins


def test_suspect_metrics_zero_constant_nan():
    history = curve([0.0] * 4, [0.7] * 4, val__accuracy=[NAN] * 4, learning_rate=[0.1] * 4)
    assert suspect_metrics(history) == {"train/loss": "all_zero", "val/loss": "constant", "val/accuracy": "all_nan"}
    assert recommendation(history).recommendation == "investigate"


def test_single_epoch_and_empty_history():
    one = curve([0.9], [1.1])
    assert best_epoch(one).epoch == 0
    assert epochs_since_improvement(one) == 0
    assert suspect_metrics(one) == {}
    assert recommendation(one).recommendation == "continue"
    assert recommendation([]).recommendation == "continue"
    assert best_epoch([]) is None and epochs_since_improvement([]) is None


def test_no_validation_falls_back_to_train_loss():
    history = curve([1.0, 0.5, 0.7])
    assert default_metric(history) == "train/loss"
    flags = recommendation(history)
    assert best_epoch(history, default_metric(history)).epoch == 1
    assert flags.epochs_since_improvement == 1
    assert not flags.is_overfitting  # needs both losses


def test_max_mode_for_accuracy():
    assert best_epoch(CLEAN, "val/accuracy", "max").epoch == 19
    assert epochs_since_improvement(curve([1, 1, 1], val__accuracy=[0.5, 0.9, 0.8]), "val/accuracy", "max") == 1


values = st.floats(allow_nan=True, allow_infinity=True, width=64)


@given(st.lists(values, min_size=0, max_size=40))
def test_best_epoch_is_the_brute_force_minimum(vals):
    history = curve(vals)
    finite = [(v, i) for i, v in enumerate(vals) if math.isfinite(v)]
    best = best_epoch(history, "train/loss", "min")
    if not finite:
        assert best is None
    else:
        assert (best.value, best.epoch) == min(finite)


@given(st.lists(values, min_size=1, max_size=40), st.integers(1, 10))
def test_flags_are_consistent(vals, patience):
    history = curve(vals, [v * 1.1 for v in vals])
    flags = recommendation(history, patience=patience)
    since = epochs_since_improvement(history, min_delta=1e-4)
    assert flags.epochs_since_improvement == since
    assert flags.is_plateaued == (since is not None and since >= patience)
    if since is not None:
        assert 0 <= since < len(vals)
    if flags.recommendation in ("use_checkpoint", "stop_early"):
        assert flags.recommendation_epoch == best_epoch(history).epoch
    if not math.isfinite(vals[-1]):
        assert flags.is_diverging and flags.recommendation == "investigate"


def test_effective_status_marks_silent_running_runs_stale():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunSummary(run_id="r", status="running", heartbeat_s=30, last_seen=now - timedelta(seconds=89))
    assert effective_status(run, now) == "running"
    assert effective_status(run.model_copy(update={"last_seen": now - timedelta(seconds=91)}), now) == "stale"
    short = RunSummary(run_id="r", status="running", heartbeat_s=1, last_seen=now - timedelta(seconds=59))
    assert effective_status(short, now) == "running"  # the 60 s floor
    assert effective_status(short.model_copy(update={"last_seen": now - timedelta(seconds=61)}), now) == "stale"
    done = RunSummary(run_id="r", status="completed", last_seen=now - timedelta(days=1))
    assert effective_status(done, now) == "completed"


def test_a_failed_run_is_investigated_even_when_its_curves_look_healthy():
    flags = recommendation(CLEAN, status="failed", error="RuntimeError: CUDA out of memory\nmore detail")
    assert flags.recommendation == "investigate"
    assert flags.recommendation_epoch == 19
    assert flags.reason.startswith("the run failed: RuntimeError: CUDA out of memory;")
    assert recommendation(CLEAN, status="completed").recommendation == "continue"
    assert recommendation([], status="failed", error=None).recommendation == "investigate"
