"""The trend fold: any in-order split of a history gives the state (and verdict) of the whole history."""

from __future__ import annotations

import math

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import TrendState, fold, needs_refold, verdict
from schemas.trends import best_epoch, epochs_since_improvement, suspect_metrics

values = st.floats(allow_nan=True, allow_infinity=True, width=64)
metric_sets = st.dictionaries(st.sampled_from(["train/loss", "val/loss", "val/accuracy", "learning_rate", "x"]),
                              values, min_size=1, max_size=5)
histories = st.lists(metric_sets, min_size=0, max_size=30).map(
    lambda ms: [EpochRow(i * 2, m) for i, m in enumerate(ms)])  # gaps in epoch numbers are fine
configs = st.sampled_from([TrendConfig(), TrendConfig(monitor="val/accuracy", mode="max", patience=3),
                           TrendConfig(monitor="x", min_delta=0.5, window=2)])


def stored(state: TrendState) -> TrendState:
    """Through the read model's storage: orjson out and back (no NaN may be left in the state)."""
    return TrendState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))


@given(histories, configs, st.lists(st.integers(0, 30), max_size=4))
def test_folding_in_pieces_equals_folding_at_once(history, config, cuts):
    whole = fold(None, history, config)
    state = None
    bounds = sorted({0, len(history), *(c for c in cuts if c <= len(history))})
    for a, b in zip(bounds, bounds[1:], strict=False):
        assert not needs_refold(state, history[a].epoch, config)
        state = stored(fold(state, history[a:b], config))
    state = state or fold(None, [], config)
    assert state.to_dict() == orjson.loads(orjson.dumps(whole.to_dict()))
    assert verdict(state, config, status="running") == verdict(whole, config, status="running")


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
    assert suspect_metrics(history) == verdict(state, config).suspect_metrics


def test_a_rewind_or_a_new_config_needs_a_refold():
    state = fold(None, [EpochRow(0, {"train/loss": 1.0}), EpochRow(1, {"train/loss": math.nan})], TrendConfig())
    assert needs_refold(state, 1, TrendConfig())  # epoch 1 again
    assert not needs_refold(state, 2, TrendConfig())
    assert needs_refold(state, 2, TrendConfig(monitor="val/accuracy"))
    assert TrendState.from_dict({**state.to_dict(), "v": -1}) is None  # an old stored state is refolded
