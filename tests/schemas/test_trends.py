"""Trend flags and verdicts on hand-made curves: the whole-history functions and `verdict` per status."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.read_models import RunSummary, effective_status
from schemas.trend_rules import TrendConfig, infer_mode
from schemas.trend_state import fold, verdict
from schemas.trends import (
    EpochRow,
    best_epoch,
    default_metric,
    divergence_evidence,
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
# The demo's overfitting shape: best at epoch 5, then a slow, steady rise while train/loss keeps falling.
OVERFIT = curve([1 / (e + 1) for e in range(24)],
                [1.0, 0.85, 0.76, 0.72, 0.70, 0.694] + [0.694 + 0.0074 * k for k in range(1, 19)])
r = random.Random(7)
# The case: a plateau with uniform noise of +-0.05 on val/loss (train/loss still falling slowly).
NOISY_PLATEAU = curve([0.6 - 0.004 * e for e in range(40)],
                      [0.9 * math.exp(-e / 2) + 0.5 + r.uniform(-0.05, 0.05) for e in range(40)])
PLATEAU = curve([1.0, 0.5] + [0.4] * 10, [1.0, 0.6] + [0.5, 0.50001, 0.5, 0.50002, 0.5, 0.5, 0.50001, 0.5, 0.5, 0.5])
DIVERGE = curve([1.0, 0.5, 0.4, 3.0, 50.0], [1.0, 0.6, 0.5, 4.0, 90.0])
NAN_LOSS = curve([1.0, 0.5, NAN, NAN], [1.0, 0.6, NAN, NAN])


def test_clean_convergence_continues_and_then_uses_its_final_epoch():
    flags = recommendation(CLEAN)
    assert best_epoch(CLEAN).epoch == 19
    assert epochs_since_improvement(CLEAN) == 0
    assert not (flags.is_plateaued or flags.is_overfitting or flags.is_diverging or flags.should_stop)
    assert flags.suspect_metrics == {}  # a constant learning rate is not suspect
    assert flags.recommendation == "continue" and flags.recommendation_epoch is None
    assert "improving beyond noise" in flags.reason
    done = recommendation(CLEAN, status="completed")
    assert done.recommendation == "use_checkpoint" and done.recommendation_epoch == 19
    assert done.reason == "the final epoch 19 is the best (val/loss 0.07); still improving: more epochs may help"


def test_overfitting_quotes_the_change_since_the_best_epoch():
    assert is_overfitting(OVERFIT) and not is_overfitting(CLEAN)
    assert not is_plateaued(OVERFIT)  # rising is not resting
    done = recommendation(OVERFIT, status="completed")
    assert done.recommendation == "use_checkpoint" and done.recommendation_epoch == 5
    # The evidence is the whole rise since the best epoch, not the last tiny window.
    assert done.reason == ("use epoch 5's checkpoint: best val/loss 0.694 at epoch 5; final 0.8272 at epoch 23 "
                           "(+0.1332, 18 epochs later); overfitting: val/loss 0.8124 (median of the last 5 epochs) is "
                           "+0.1124 from its best level 0.7 (median of 3 to epoch 5), over 5x its noise ±0, while "
                           "train/loss fell 0.2 → 0.04545")
    assert "while train/loss fell" in done.reason
    assert math.isclose(done.change_since_best, 0.0074 * 18)
    assert done.epochs_since_best == 18 and done.stop_epoch == 10
    running = recommendation(OVERFIT)
    assert running.recommendation == "stop_early" and running.recommendation_epoch == 5
    assert running.reason.startswith("stop now, overfitting:") and "use epoch 5's checkpoint" in running.reason


def test_a_noisy_plateau_is_a_plateau_not_overfitting():
    flags = recommendation(NOISY_PLATEAU)
    assert flags.is_plateaued and not flags.is_overfitting and not flags.is_diverging
    assert flags.noise > 0.02 and "flat within noise" in flags.reason
    assert flags.recommendation == "stop_early"  # patience (5) is long used up
    done = recommendation(NOISY_PLATEAU, status="completed")
    assert done.recommendation == "use_checkpoint" and done.recommendation_epoch == best_epoch(NOISY_PLATEAU).epoch
    assert "overfitting" not in done.reason


def test_plateau_and_early_stopping_with_patience_and_min_delta():
    assert is_plateaued(PLATEAU, min_delta=1e-3)
    assert epochs_since_improvement(PLATEAU, min_delta=1e-3) == 9
    assert epochs_since_improvement(PLATEAU, min_delta=0.0) == 9  # 0.5 at epoch 2 is never beaten
    flags = recommendation(PLATEAU, min_delta=1e-3)
    assert flags.should_stop and flags.stop_epoch == 7
    assert flags.recommendation == "stop_early" and flags.recommendation_epoch == 2
    assert "for 9 epochs (patience 5)" in flags.reason
    patient = recommendation(PLATEAU, patience=20, min_delta=1e-3)
    assert not patient.should_stop and patient.stop_in == 11
    assert patient.recommendation == "stop_soon" and "stops after 11 more epochs" in patient.reason


def test_divergence_by_growth_and_by_nan_names_the_first_non_finite_epoch():
    assert is_diverging(DIVERGE) and is_diverging(NAN_LOSS) and not is_diverging(CLEAN)
    assert "4.3x its best 0.4 at epoch 2" not in (divergence_evidence(DIVERGE) or "")
    assert divergence_evidence(DIVERGE).startswith("train/loss is 3 (median of the last 3 epochs), 7.5x its best")
    flags = recommendation(NAN_LOSS)
    assert flags.recommendation == "stop_early" and flags.should_stop and flags.non_finite_epoch == 2
    assert "val/loss is nan from epoch 2; last finite 0.6 at epoch 1" in flags.reason
    assert flags.last_value is None and flags.best_value == 0.6  # strict JSON: no NaN in the flags
    assert recommendation(NAN_LOSS, status="completed").recommendation == "investigate"
    assert best_epoch(NAN_LOSS).epoch == 1  # NaN never wins


def test_a_loss_hovering_near_zero_is_not_a_blow_up_but_a_steady_explosion_is():
    # Memorising: train/loss hovers between 0.001 and 0.009; its luckiest epoch is far below its median.
    hovering = curve([0.005 + 0.004 * math.sin(1.7 * e) for e in range(40)])
    values = [row.metrics["train/loss"] for row in hovering]
    assert sorted(values[-3:])[1] > 2 * min(values)  # the ratio alone would call it a blow-up
    assert not is_diverging(hovering)
    exploding = curve([0.5] * 10 + [0.5 * 1.4 ** k for k in range(1, 6)])
    assert divergence_evidence(exploding) == ("train/loss is 1.921 (median of the last 3 epochs), 3.84x its best "
                                              "0.5 at epoch 0")


def test_one_spike_is_neither_divergence_nor_overfitting():
    val = [0.9 * math.exp(-e / 2) + 0.5 + 0.002 * (e % 3) for e in range(30)]
    val[24] = 1.6
    train = [v - 0.1 for v in val]
    flags = recommendation(curve(train, val))
    assert not flags.is_diverging and not flags.is_overfitting


def test_suspect_metrics_zero_constant_nan():
    history = curve([0.0] * 4, [0.7] * 4, val__accuracy=[NAN] * 4, learning_rate=[0.1] * 4)
    assert suspect_metrics(history) == {"train/loss": "all_zero", "val/loss": "constant", "val/accuracy": "all_nan"}
    flags = recommendation(history)
    assert flags.recommendation == "investigate" and "logging bug" in flags.reason


def test_single_epoch_and_empty_history():
    one = curve([0.9], [1.1])
    assert best_epoch(one).epoch == 0 and epochs_since_improvement(one) == 0 and suspect_metrics(one) == {}
    assert recommendation(one).recommendation == "continue"
    assert best_epoch([]) is None and epochs_since_improvement([]) is None
    empty = recommendation([])
    assert empty.recommendation == "no_data" and empty.reason == "no data yet: no epochs logged"
    assert recommendation([], status="completed").recommendation == "no_data"
    assert recommendation([], status="failed", error=None).recommendation == "investigate"


def test_no_validation_falls_back_to_train_loss():
    history = curve([1.0, 0.5, 0.7])
    assert default_metric(history) == "train/loss"
    flags = recommendation(history)
    assert flags.monitor == "train/loss" and best_epoch(history, "train/loss").epoch == 1
    assert flags.epochs_since_improvement == 1
    assert not flags.is_overfitting  # needs both losses


def test_mode_is_inferred_from_the_name():
    for name in ("val/accuracy", "val/acc", "top5_acc", "val/f1", "roc_auc", "precision", "val/recall",
                 "val/mIoU"[:-4] + "iou", "bleu4", "mAP@50", "val/Accuracy"):
        assert infer_mode(name) == "max", name
    for name in ("val/loss", "train/loss", "val/perplexity", "wer", "heatmap_loss", "val/mse", "accurate_loss"[9:]):
        assert infer_mode(name) == "min", name
    history = curve([1, 1, 1], val__accuracy=[0.5, 0.9, 0.8])
    assert best_epoch(history, "val/accuracy").epoch == 1  # mode inferred: max
    flags = recommendation(history, metric="val/accuracy")
    assert flags.mode == "max" and flags.best_epoch == 1 and flags.epochs_since_improvement == 1


def test_an_unlogged_monitored_metric_is_reported_not_guessed():
    flags = recommendation(CLEAN, metric="val/f1", status="completed")
    assert flags.recommendation == "investigate"
    assert flags.reason.startswith("val/f1 is not among the logged metrics (learning_rate, train/loss, val/accuracy")


def test_each_status_gets_a_recommendation_that_fits_it():
    config = TrendConfig()
    state = fold(None, OVERFIT, config)
    failed = verdict(state, config, "failed", "RuntimeError: CUDA out of memory\nmore detail")
    assert failed.recommendation == "investigate" and failed.recommendation_epoch == 5
    assert failed.reason.startswith("the run failed after epoch 23: RuntimeError: CUDA out of memory; best val/loss")
    silent = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stale = verdict(state, config, "stale", silent_since=silent)
    assert stale.recommendation == "investigate"
    assert stale.reason.startswith("the process went silent at 2026-01-02 03:04:05 UTC after epoch 23: check")
    assert verdict(state, config, "interrupted").recommendation == "use_checkpoint"
    assert verdict(state, config, "running").recommendation == "stop_early"
    assert verdict(fold(None, [], config), config, "stale").recommendation == "investigate"


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


@given(st.lists(values, min_size=1, max_size=40), st.integers(1, 10), st.sampled_from(["running", "completed"]))
def test_flags_are_consistent(vals, patience, status):
    history = curve(vals, [v * 1.1 for v in vals])
    flags = recommendation(history, patience=patience, status=status)
    since = epochs_since_improvement(history, min_delta=1e-4)
    assert flags.epochs_since_improvement == since and 0 <= since <= len(vals)
    assert flags.should_stop == (since >= patience or not math.isfinite(vals[-1] * 1.1))
    if flags.recommendation in ("use_checkpoint", "stop_early", "stop_soon"):
        assert flags.recommendation_epoch == (best_epoch(history).epoch if best_epoch(history) else None)
    if not math.isfinite(vals[-1]):
        assert flags.is_diverging and flags.recommendation in ("investigate", "stop_early")
        assert not flags.is_plateaued
    if flags.is_plateaued:
        assert not flags.is_diverging
