"""Statistics over the few recent epochs a trend judgement looks at. Pure, standard library only.

Windows are tiny (twice `DEFAULT_WINDOW` points at most), so plain single-pass loops beat anything
clever; nothing here may grow with a run's history. The API re-judges stored states on reads, so these
run in a few microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_SQRT2 = math.sqrt(2.0)
_SQRT6 = math.sqrt(6.0)
_MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation, for Gaussian noise


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass(slots=True)  # not frozen: a frozen dataclass pays a setattr per field, per verdict
class Line:
    """A least-squares line through (epoch, value) points, with the noise around it."""

    slope: float  # per epoch
    first: int  # epochs spanned
    last: int
    n: int
    level: float  # the fitted value at `last`
    change: float  # the fitted change from `first` to `last`
    noise: float  # the series' noise (see `fit`)
    change_noise: float  # the standard error of `change` for that noise

    def significant(self, z: float, floor: float) -> bool:
        """Whether the change exceeds both `z` standard errors and `floor`."""
        return abs(self.change) > max(z * self.change_noise, floor)


def _median_sorted(ordered: list[float]) -> float:
    m = len(ordered)
    return ordered[m // 2] if m % 2 else (ordered[m // 2 - 1] + ordered[m // 2]) / 2


def difference_noise(values: Sequence[float], recent: int | None = None) -> float:
    """The epoch-to-epoch noise (a standard deviation) of a series, whatever its trend and its bends.

    The larger of two robust estimates, because an underestimate is what makes noise look like a change:
    the median absolute second difference `v[i-1] - 2 v[i] + v[i+1]` over all the values (a straight line
    cancels out; white noise of deviation s gives deviation s*sqrt(6)), and the median absolute deviation
    of the first differences of the `recent` last values from their median (a steady trend drops out;
    noise gives deviation s*sqrt(2); only the recent ones, whose trend has not bent much). Medians, so
    that the bend of a learning curve, the turn of an overfitting one or a spike do not pass for noise.
    On 20 epochs of pure Gaussian noise (recent 10) it is below 0.65 of the true deviation one time in
    twenty. 0.0 for fewer than 4 values.
    """
    n = len(values)
    if n < 4:
        return 0.0
    d1 = [b - a for a, b in zip(values, values[1:])]  # noqa: B905 - one shorter by design
    d2 = sorted([abs(b - a) for a, b in zip(d1, d1[1:])])  # noqa: B905
    near = sorted(d1[-(recent - 1):] if recent and recent < n else d1)
    centre = _median_sorted(near)
    spread = sorted([abs(d - centre) for d in near])
    return _MAD_TO_SIGMA * max(_median_sorted(spread) / _SQRT2, _median_sorted(d2) / _SQRT6)


def curvature_noise(values: Sequence[float]) -> float:
    """The second-difference half of `difference_noise` alone: blind to any bend of the curve (a V-shaped
    turn, an exponential start), at the price of a noisier estimate. 0.0 for fewer than 4 values."""
    if len(values) < 4:
        return 0.0
    d1 = [b - a for a, b in zip(values, values[1:])]  # noqa: B905 - one shorter by design
    return _MAD_TO_SIGMA * _median_sorted(sorted([abs(b - a) for a, b in zip(d1, d1[1:])])) / _SQRT6  # noqa: B905


def fit(epochs: Sequence[int], values: Sequence[float], span: int | None = None) -> Line | None:
    """The least-squares line through the last `span` points (default: all), None for fewer than 3; its
    noise is `difference_noise` of all the points (the longer sample) and the `span` recent ones."""
    k = len(values) if span is None else min(span, len(values))
    if k < 3:
        return None
    # Scaled when huge (a diverging run) or tiny, so that squares can neither overflow nor underflow.
    scale = max(-min(values), max(values))
    if not math.isfinite(scale):
        return None
    if scale > 1e100 or 0.0 < scale < 1e-100:
        values = [v / scale for v in values]
    else:
        scale = 1.0
    xs, ys = epochs[-k:], values[-k:]
    x0, y0 = xs[0], ys[0]  # shifted sums: no cancellation for large epoch numbers or offsets
    dxs = [x - x0 for x in xs]
    dys = [y - y0 for y in ys]
    sx, sy = float(sum(dxs)), sum(dys)
    sxx = float(sum([d * d for d in dxs]))
    sxy = sum([a * b for a, b in zip(dxs, dys, strict=True)])
    cxx = sxx - sx * sx / k
    if cxx <= 0:
        return None
    cxy = sxy - sx * sy / k
    slope = cxy / cxx
    sigma = difference_noise(values, k)
    span_epochs = xs[-1] - x0
    level = y0 + sy / k + slope * (span_epochs - sx / k)
    return Line(slope=slope * scale, first=x0, last=xs[-1], n=k, level=level * scale,
                change=slope * span_epochs * scale, noise=sigma * scale,
                change_noise=sigma * span_epochs / math.sqrt(cxx) * scale)
