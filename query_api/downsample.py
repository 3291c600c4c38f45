"""Downsampling that keeps what matters. Pure: no I/O, same input -> same output.

`keep_indices` chooses which points of a series to send when a client asks for at most `max_points`.
It always keeps, in this priority order while the budget lasts: the first and the last point, the
best point of each named series (its min or max, by mode), then the minimum and the maximum of every
series (earliest index on ties; NaN/inf never count as an extreme), then the first non-finite point of
every series (a run that diverged must still show where). The rest of the budget goes to points spread
evenly over the ones not yet kept, so the shape of the curve survives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

Mode = Literal["min", "max"]


def _all_finite(values: Sequence[float | None]) -> bool:
    """True when every value is a finite number, at C speed: a None stops `sum`, a NaN or inf carries through
    it (finite values whose sum overflows say False, and only take the slow path)."""
    try:
        return math.isfinite(sum(values))
    except TypeError:
        return False


def _extreme(values: Sequence[float | None], mode: Mode) -> int | None:
    if isinstance(values, list) and values and _all_finite(values):
        # min/max return the first extreme, index the first equal one: the earliest index, as below.
        return values.index(min(values) if mode == "min" else max(values))
    best_i: int | None = None
    best_v = 0.0
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            continue
        if best_i is None or (v < best_v if mode == "min" else v > best_v):
            best_i, best_v = i, v
    return best_i


def must_keep(n: int, series: Mapping[str, Sequence[float | None]],
              best: Mapping[str, Mode] | None = None) -> list[int]:
    """The points that matter, most important first, without duplicates."""
    if n == 0:
        return []
    ordered: list[int] = [0, n - 1]
    for name in sorted(best or {}):
        if name in series and (i := _extreme(series[name], (best or {})[name])) is not None:
            ordered.append(i)
    for name in sorted(series):
        for mode in ("min", "max"):
            if (i := _extreme(series[name], mode)) is not None:
                ordered.append(i)
    for name in sorted(series):
        if isinstance(series[name], list) and _all_finite(series[name]):
            continue
        first_bad = next((i for i, v in enumerate(series[name]) if v is not None and not math.isfinite(v)), None)
        if first_bad is not None:
            ordered.append(first_bad)
    return list(dict.fromkeys(ordered))


def _spread(candidates: Sequence[int], count: int) -> list[int]:
    """`count` items of `candidates` spaced evenly, first and last included when count >= 2."""
    if count <= 0 or not candidates:
        return []
    if count >= len(candidates):
        return list(candidates)
    if count == 1:
        return [candidates[len(candidates) // 2]]
    step = (len(candidates) - 1) / (count - 1)
    return [candidates[round(k * step)] for k in range(count)]


def keep_indices(n: int, series: Mapping[str, Sequence[float | None]], max_points: int,
                 best: Mapping[str, Mode] | None = None) -> list[int]:
    """Sorted indices (into a series of length `n`) of at most `max_points` points to keep."""
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    for name, values in series.items():
        if len(values) != n:
            raise ValueError(f"series {name!r} has {len(values)} points, expected {n}")
    if n <= max_points:
        return list(range(n))
    kept = set(must_keep(n, series, best)[:max_points])
    rest = [i for i in range(n) if i not in kept]
    kept.update(_spread(rest, max_points - len(kept)))
    return sorted(kept)
