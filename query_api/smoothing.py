"""Exponential moving average, debiased as TensorBoard's smoothing slider. Pure: no I/O.

`weight` is the weight of the history (TensorBoard's "smoothing"): s_n = weight * s_(n-1) + (1 - weight) * x_n,
started at 0 and divided by (1 - weight ** n), n the number of finite values folded so far. The division
removes the pull towards the zero start, so the first smoothed value is the first value itself and a constant
series stays constant. A NaN or infinite value is passed through as it is and not folded in (a diverged
epoch stays visible and does not poison every later point); a missing value (None) stays missing.

Smoothing is a fold over the series in order, so it must run over every stored point: smoothing a downsampled
curve would weigh points by how the downsampler spaced them, not by how training logged them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence


def check_weight(weight: float) -> float:
    if not (0.0 < weight < 1.0) or not math.isfinite(weight):
        raise ValueError(f"the smoothing weight must be strictly between 0 and 1, got {weight!r}")
    return float(weight)


class Ema:
    """The running state of one series: feed values in order, get each one's smoothed value back."""

    __slots__ = ("weight", "last", "count", "w_n")

    def __init__(self, weight: float):
        self.weight = check_weight(weight)
        self.last = 0.0
        self.count = 0
        self.w_n = 1.0  # weight ** count, kept as a product (one multiplication a value, as `ema` does)

    def add(self, value: float | None) -> float | None:
        if value is None or not math.isfinite(value):
            return value
        self.last = self.last * self.weight + (1.0 - self.weight) * value
        self.count += 1
        self.w_n *= self.weight
        return self.last / (1.0 - self.w_n)


def ema(values: Iterable[float | None], weight: float) -> list[float | None]:
    """The debiased EMA of `values`, one output per input. (A tight loop: it runs over every step of a run.)"""
    w = check_weight(weight)
    keep = 1.0 - w
    last, w_n = 0.0, 1.0
    out: list[float | None] = []
    append = out.append
    for v in values:
        if v is None or v - v != 0.0:  # missing, NaN or infinite: passed through, not folded in
            append(v)
            continue
        last = last * w + keep * v
        w_n *= w
        append(last / (1.0 - w_n))
    return out


def smooth_rows(rows: Sequence[Mapping[str, float]], weight: float,
                names: frozenset[str] | None = None) -> list[dict[str, float]]:
    """Each metric smoothed over the rows that carry it, in row order; a row keeps exactly its own metrics
    (those in `names`, when given). Rows logged with different metric sets (a validation value every 100
    steps) smooth each metric over its own points only."""
    states: dict[str, Ema] = {}
    out: list[dict[str, float]] = []
    for row in rows:
        smoothed: dict[str, float] = {}
        for name, value in row.items():
            if names is not None and name not in names:
                continue
            state = states.get(name)
            if state is None:
                state = states[name] = Ema(weight)
            smoothed[name] = state.add(value)
        out.append(smoothed)
    return out
