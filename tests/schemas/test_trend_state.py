"""The trend fold: any in-order split of a history gives the state (and verdict) of the whole history, the
state stays small whatever the history's length, and it answers what the history functions answer."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas.read_models import TrendFlags
from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import TrendState, fold, needs_refold, verdict, verdict_fields
from schemas.trends import best_epoch, epochs_since_improvement, recommendation, suspect_metrics

values = st.floats(allow_nan=True, allow_infinity=True, width=64)
smooth = st.floats(0.0, 3.0, allow_nan=False)
metric_sets = st.dictionaries(st.sampled_from(["train/loss", "val/loss", "val/accuracy", "train/accuracy",
                                               "learning_rate", "x"]),
                              st.one_of(values, smooth, smooth), min_size=1, max_size=6)
histories = st.lists(metric_sets, min_size=0, max_size=45).map(
    lambda ms: [EpochRow(i * 2, m) for i, m in enumerate(ms)])  # gaps in epoch numbers are fine
configs = st.sampled_from([TrendConfig(), TrendConfig(monitor="val/accuracy", patience=3),
                           TrendConfig(monitor="x", min_delta=0.5, window=2),
                           TrendConfig(monitor="val/loss", mode="max", patience=1, window=6)])
statuses = st.sampled_from(["running", "completed", "failed", "interrupted", "stale"])


def stored(state: TrendState) -> TrendState:
    """Through the read model's storage: orjson out and back (no NaN may be left in the state)."""
    return TrendState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))


@given(histories, configs, st.lists(st.integers(0, 45), max_size=4), statuses)
def test_folding_in_pieces_equals_folding_at_once(history, config, cuts, status):
    whole = fold(None, history, config)
    assert fold(whole.copy(), [], config).to_dict() == whole.to_dict()  # folding nothing changes nothing
    state = None
    bounds = sorted({0, len(history), *(c for c in cuts if c <= len(history))})
    for a, b in zip(bounds, bounds[1:], strict=False):
        assert not needs_refold(state, history[a].epoch, config)
        state = stored(fold(state, history[a:b], config))
    state = state or fold(None, [], config)
    assert state.to_dict() == orjson.loads(orjson.dumps(whole.to_dict()))
    silent = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    got = verdict(state, config, status=status, error="boom", silent_since=silent)
    assert got == verdict(whole, config, status=status, error="boom", silent_since=silent)
    fields = verdict_fields(state, config, status=status, error="boom", silent_since=silent)
    assert fields == got.model_dump() and set(fields) == set(TrendFlags.model_fields)  # what the read model stores
    orjson.loads(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))  # strict JSON: every float finite or None
    assert all(v is None or math.isfinite(v) for v in got.model_dump().values() if isinstance(v, float))


@given(histories, configs)
def test_state_answers_what_the_history_functions_answer(history, config):
    state = fold(None, history, config)
    metric = state.monitored(config)
    mode = config.mode_of(metric)
    best = best_epoch(history, metric, mode)
    got = state.best(metric, mode)
    assert (got.epoch, got.value) == (best.epoch, best.value) if best else got is None
    assert state.since_improvement(metric) == epochs_since_improvement(history, metric, mode,
                                                                       config.min_delta_or_default)
    flags = verdict(state, config)
    assert suspect_metrics(history) == flags.suspect_metrics
    assert flags.best_epoch == (best.epoch if best else None)
    if config == TrendConfig():
        assert recommendation(history) == flags


def test_the_state_is_bounded_by_metrics_and_window_not_history():
    config = TrendConfig()
    names = ["train/loss", "val/loss", "train/accuracy", "val/accuracy", "learning_rate", "gradient_norm",
             "epoch_duration", "val/perplexity"]
    state, sizes = None, {}
    for epoch in range(3000):
        metrics = {name: 1.0 / (epoch + 1) + 0.001 * ((epoch * 7 + i) % 5) for i, name in enumerate(names)}
        state = fold(state, [EpochRow(epoch, metrics)], config)
        if epoch + 1 in (100, 3000):
            sizes[epoch + 1] = len(orjson.dumps(state.to_dict()))
    data = state.to_dict()
    assert all(len(flat) <= 2 * 2 * config.window for flat in data["win"].values())
    assert all(len(pair[1]) <= 3 * 2 * config.window for pair in data["pairs"].values())
    assert set(data["stats"]) == set(names) and set(data["refs"]) == {"train/loss", "val/loss"}
    assert sizes[3000] <= sizes[100] * 1.2  # only the digits of the numbers differ


def test_a_learning_rate_step_starts_the_windows_again():
    config = TrendConfig()
    flat = [EpochRow(e, {"val/loss": 0.5 + 0.001 * (e % 2), "train/loss": 0.4, "learning_rate": 0.1})
            for e in range(20)]
    state = fold(None, flat, config)
    assert verdict(state, config).is_plateaued
    dropped = fold(state, [EpochRow(20 + e, {"val/loss": 0.38, "train/loss": 0.3, "learning_rate": 0.01})
                           for e in range(3)], config)
    flags = verdict(dropped, config)
    assert not flags.is_plateaued and flags.trend is None  # 3 epochs since the drop: too few to judge
    later = fold(dropped, [EpochRow(23 + e, {"val/loss": 0.38, "train/loss": 0.3, "learning_rate": 0.01})
                           for e in range(4)], config)
    flags = verdict(later, config)
    assert flags.is_plateaued and flags.trend_epochs == [20, 26]
    assert "since the learning-rate change at epoch 20" in " ".join(flags.evidence)


def test_a_rewind_or_a_new_config_needs_a_refold():
    state = fold(None, [EpochRow(0, {"train/loss": 1.0}), EpochRow(1, {"train/loss": math.nan})], TrendConfig())
    assert needs_refold(state, 1, TrendConfig())  # epoch 1 again
    assert not needs_refold(state, 2, TrendConfig())
    assert needs_refold(state, 2, TrendConfig(monitor="val/accuracy"))
    assert TrendState.from_dict({**state.to_dict(), "v": -1}) is None  # an old stored state is refolded
    assert TrendState.from_dict({**state.to_dict(), "v": 1}) is None  # the first version's shape
