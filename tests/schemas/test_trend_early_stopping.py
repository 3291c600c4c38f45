"""`epochs_since_improvement` and `should_stop` against reference implementations of Keras's and Lightning's
`EarlyStopping`, written from their sources, for random curves, modes, patiences and min_deltas.

- keras (keras/src/callbacks/early_stopping.py, Keras 3): `best` starts at +inf (min) / -inf (max) and
  `min_delta` is negated for min; every epoch with a monitored value does `wait += 1`, then
  `if monitor_op(current - min_delta, best): best = current; wait = 0` (monitor_op `less` / `greater`),
  else `if wait >= patience and epoch > 0: stop`.
- Lightning (src/lightning/pytorch/callbacks/early_stopping.py, `_evaluate_stopping_criteria`): with
  `check_finite=True` a non-finite value stops at once (wait untouched); else
  `if monitor_op(current - min_delta, best_score): best_score = current; wait_count = 0`, else
  `wait_count += 1; stop if wait_count >= patience` (min_delta negated for min, as in Keras).

Our rule (README, "Trend flags"): `epochs_since_improvement` is Keras's `wait`, except that a non-finite
value never counts as an improvement (Keras would take -inf as a new best in min mode: Lightning's
check_finite stops there first); `should_stop` is Lightning's stop on a non-finite value and Keras's
(= Lightning's, on finite values) `wait >= patience` otherwise.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import fold, verdict
from schemas.trends import epochs_since_improvement


def keras(values, mode, patience, min_delta):
    """(wait, stop) after each epoch, by Keras's rule; non-finite values never improve (see above)."""
    less = mode == "min"
    delta = -abs(min_delta) if less else abs(min_delta)
    best = math.inf if less else -math.inf
    wait, out = 0, []
    for epoch, current in enumerate(values):
        wait += 1
        improved = math.isfinite(current) and (current - delta < best if less else current - delta > best)
        if improved:
            best, wait = current, 0
        out.append((wait, not improved and wait >= patience and epoch > 0))
    return out


def lightning(values, mode, patience, min_delta):
    """stop after each epoch, by Lightning's rule with check_finite=True."""
    less = mode == "min"
    delta = -abs(min_delta) if less else abs(min_delta)
    best = math.inf if less else -math.inf
    wait, out = 0, []
    for current in values:
        if not math.isfinite(current):
            out.append(True)
            continue
        if current - delta < best if less else current - delta > best:
            best, wait = current, 0
            out.append(False)
        else:
            wait += 1
            out.append(wait >= patience)
    return out


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
anything = st.one_of(finite, finite, finite, st.sampled_from([math.nan, math.inf, -math.inf]))
# Small grids of values make ties and near-ties with min_delta common, where the rules are most fragile.
grid = st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0001, 1.001, 1.1])


@given(st.lists(st.one_of(anything, grid), min_size=1, max_size=40), st.sampled_from(["min", "max"]),
       st.integers(1, 8), st.sampled_from([0.0, 1e-4, 0.001, 0.05, 0.1, 0.2, 0.5]), st.integers(1, 4))
def test_wait_and_stop_match_keras_and_lightning(values, mode, patience, min_delta, cut):
    config = TrendConfig(monitor="val/score", mode=mode, patience=patience, min_delta=min_delta)
    history = [EpochRow(e, {"val/score": v, "train/loss": 1.0}) for e, v in enumerate(values)]
    reference, stops = keras(values, mode, patience, min_delta), lightning(values, mode, patience, min_delta)
    state = None
    for i, value in enumerate(values):
        state = fold(state, history[i:i + 1], config)
        flags = verdict(state, config, status="running")
        wait, keras_stop = reference[i]
        assert flags.epochs_since_improvement == wait
        assert epochs_since_improvement(history[:i + 1], "val/score", mode, min_delta) == wait
        if not math.isfinite(value):
            assert flags.should_stop and stops[i]  # Lightning's check_finite, at once
        else:
            assert flags.should_stop == keras_stop  # (Keras's `epoch > 0` guard cannot bite: patience >= 1)
            if all(map(math.isfinite, values[:i + 1])):
                assert flags.should_stop == stops[i]  # on finite curves Keras and Lightning agree
    # Folding in pieces stops at the same epoch as folding epoch by epoch.
    whole = verdict(fold(fold(None, history[:cut], config), history[cut:], config), config)
    assert whole.epochs_since_improvement == reference[-1][0]
    first_stop = next((e for e, v in enumerate(values) if not math.isfinite(v) or reference[e][0] >= patience), None)
    assert whole.stop_epoch == first_stop


def test_worked_example_patience_3_min_delta_0_1():
    """Keras's docstring example, with numbers: improvement must beat the best by more than min_delta."""
    values = [1.0, 0.95, 0.8, 0.75, 0.71, 0.69, 0.5]
    config = TrendConfig(monitor="val/loss", patience=3, min_delta=0.1)
    waits, stops = [], []
    state = None
    for e, v in enumerate(values):
        state = fold(state, [EpochRow(e, {"val/loss": v})], config)
        flags = verdict(state, config)
        waits.append(flags.epochs_since_improvement)
        stops.append(flags.should_stop)
    # 0.95 is not < 1.0 - 0.1; 0.8 is (by 0.2 > 0.1); 0.75, 0.71 are not (< 0.1 better than 0.8);
    # 0.69 beats 0.8 by 0.11; 0.5 beats 0.69.
    assert waits == [0, 1, 0, 1, 2, 0, 0]
    assert stops == [False] * 7
    assert [w for w, _ in keras(values, "min", 3, 0.1)] == waits


def test_a_change_of_exactly_min_delta_is_judged_in_keras_arithmetic():
    """0.3 + 0.5 == 0.8 in floats, but 0.8 - 0.5 > 0.3: written the other way round, 0.3 would improve on 0.8."""
    for values, mode in (([0.8, 0.3], "min"), ([0.7, 0.9], "max")):
        config = TrendConfig(monitor="val/score", mode=mode, patience=5, min_delta=0.5 if mode == "min" else 0.2)
        state = fold(None, [EpochRow(e, {"val/score": v}) for e, v in enumerate(values)], config)
        expected = keras(values, mode, 5, config.min_delta)[-1][0]
        assert verdict(state, config).epochs_since_improvement == expected == 1
