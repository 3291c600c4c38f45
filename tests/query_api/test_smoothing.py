"""The EMA behind `ema=`: debiased as TensorBoard's smoothing, checked against its closed form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query_api.smoothing import check_weight, ema, smooth_rows

weights = st.floats(min_value=0.01, max_value=0.99)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
values = st.lists(st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf, None])), max_size=60)


def closed_form(xs: list[float], w: float) -> list[float]:
    """s_n = sum_i (1 - w) w^(n - i) x_i / (1 - w^n): the weighted mean of the first n values, newest heaviest."""
    out = []
    for n in range(1, len(xs) + 1):
        num = sum((1 - w) * w ** (n - 1 - i) * x for i, x in enumerate(xs[:n]))
        out.append(num / (1 - w ** n))
    return out


def close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, scale)


@given(st.lists(finite, min_size=1, max_size=60), weights)
def test_equals_the_debiased_weighted_mean(xs, w):
    scale = max(abs(x) for x in xs)
    assert all(close(a, b, scale) for a, b in zip(ema(xs, w), closed_form(xs, w), strict=True))


@given(st.lists(finite, min_size=1, max_size=60), weights)
def test_first_value_is_itself_and_every_value_stays_within_what_came_before(xs, w):
    out = ema(xs, w)
    assert out[0] == pytest.approx(xs[0], rel=1e-12, abs=1e-9)
    scale = max(abs(x) for x in xs)
    for n, s in enumerate(out, start=1):
        assert min(xs[:n]) - 1e-9 * max(1, scale) <= s <= max(xs[:n]) + 1e-9 * max(1, scale)


@given(finite, st.integers(min_value=1, max_value=200), weights)
def test_a_constant_stays_constant(c, n, w):
    assert all(s == pytest.approx(c, rel=1e-9, abs=1e-9) for s in ema([c] * n, w))


@given(values, weights)
def test_non_finite_and_missing_values_pass_through_and_leave_the_rest_alone(xs, w):
    out = ema(xs, w)
    assert len(out) == len(xs)
    kept = [x for x in xs if x is not None and math.isfinite(x)]
    for x, s in zip(xs, out, strict=True):
        if x is None:
            assert s is None
        elif not math.isfinite(x):
            assert s is x or (math.isnan(x) and math.isnan(s))
    assert [s for x, s in zip(xs, out, strict=True) if x is not None and math.isfinite(x)] == ema(kept, w)


@given(values, weights, st.integers(min_value=0, max_value=60))
def test_causal_a_prefix_smooths_the_same(xs, w, k):
    full, prefix = ema(xs, w), ema(xs[:k], w)
    assert all(a is b or a == b or (a != a and b != b) for a, b in zip(full[:k], prefix, strict=True))


@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), finite, max_size=3), max_size=40), weights)
def test_rows_smooth_each_metric_over_its_own_points(rows, w):
    out = smooth_rows(rows, w)
    assert [set(r) for r in out] == [set(r) for r in rows]
    for name in ("a", "b", "c"):
        mine = [r[name] for r in rows if name in r]
        assert [r[name] for r in out if name in r] == ema(mine, w)
    only_a = smooth_rows(rows, w, frozenset({"a"}))
    assert [set(r) for r in only_a] == [set(r) & {"a"} for r in rows]


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 1.5, math.nan, math.inf])
def test_weights_outside_the_open_interval_are_refused(bad):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        check_weight(bad)
