"""Downsampling keeps first, last, best, min and max, stays within budget, and is deterministic."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_api.downsample import keep_indices, must_keep

values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32))


@st.composite
def series_and_budget(draw):
    n = draw(st.integers(min_value=0, max_value=120))
    names = draw(st.lists(st.sampled_from(["a", "b", "c/loss"]), max_size=3, unique=True))
    series = {name: draw(st.lists(values, min_size=n, max_size=n)) for name in names}
    return n, series, draw(st.integers(min_value=1, max_value=150))


def _extreme(vals, mode):
    finite = [(v, i) for i, v in enumerate(vals) if v is not None and math.isfinite(v)]
    if not finite:
        return None
    target = min(v for v, _ in finite) if mode == "min" else max(v for v, _ in finite)
    return next(i for v, i in finite if v == target)


@settings(max_examples=120, deadline=None)
@given(series_and_budget())
def test_budget_order_and_endpoints(case):
    n, series, budget = case
    kept = keep_indices(n, series, budget)
    assert kept == sorted(set(kept))
    assert all(0 <= i < n for i in kept)
    assert len(kept) == min(n, budget)
    if n and budget >= 2:
        assert kept[0] == 0 and kept[-1] == n - 1
    assert kept == keep_indices(n, series, budget)  # deterministic


@settings(max_examples=120, deadline=None)
@given(series_and_budget(), st.sampled_from(["min", "max"]))
def test_keeps_best_and_extremes_when_budget_allows(case, mode):
    n, series, budget = case
    best = {name: mode for name in list(series)[:1]}
    kept = set(keep_indices(n, series, budget, best))
    important = must_keep(n, series, best)
    if len(important) <= budget:
        for name, vals in series.items():
            for m in ("min", "max"):
                if (i := _extreme(vals, m)) is not None:
                    assert i in kept, (name, m)
    for name, m in best.items():  # the best point is only ever outranked by first and last
        if (i := _extreme(series[name], m)) is not None and budget >= 3:
            assert i in kept


def test_small_series_is_returned_whole():
    assert keep_indices(3, {"a": [1.0, 2.0, 3.0]}, 10) == [0, 1, 2]


def test_spike_survives_heavy_downsampling():
    vals = [1.0] * 1000
    vals[537] = 50.0
    kept = keep_indices(1000, {"loss": vals}, 10)
    assert 537 in kept and len(kept) == 10


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError):
        keep_indices(3, {"a": [1.0]}, 2)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0]), st.floats(allow_nan=False, allow_infinity=False)),
                min_size=1, max_size=80), st.sampled_from(["min", "max"]))
def test_all_finite_series_take_the_fast_path_to_the_same_extreme(vals, mode):
    """Series of finite numbers only (the usual case) are scanned by min/max at C speed: same answer."""
    from query_api.downsample import _extreme as fast

    assert fast(vals, mode) == _extreme(vals, mode)
    assert fast(tuple(vals), mode) == _extreme(vals, mode)  # the general path
