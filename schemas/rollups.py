"""Rollups of a long step series, so a downsampled curve never needs a million rows. Pure: no I/O.

A run's steps, ordered by step number, get ordinals 0, 1, 2, ... Level k groups ordinals into buckets of
4**k (k = MIN_LEVEL..MAX_LEVEL: 16 ... 1,048,576 steps). For each bucket and metric an *aggregate* keeps
the first, last, minimum and maximum point (step and value) and the first non-finite point: exactly the
points downsampling must never lose. Aggregates of neighbouring ranges merge (`merge`), so a level-k
bucket is the merge of its four level-(k-1) children.

Complete buckets are stored; the writer keeps the incomplete tail as one *open* aggregate per level
(`Tail`): open[k] merges the level-(k-1) buckets completed since the last level-k boundary, and
open[MIN_LEVEL] the last few rows. Adding a row touches open[MIN_LEVEL] only; a completed bucket moves
up one level, so the cost per row is constant whatever the length of the run. A reader never needs the
open aggregates: `cover` spans any range with complete buckets and at most 15 raw rows at each end.

An aggregate is a dict metric -> [first_s, first_v, last_s, last_v, min_s, min_v, max_s, max_v, n, nf_s, nf_v]
with values JSON-safe (a non-finite value as "nan" / "inf" / "-inf"; min/max over finite values only,
None when there is none; nf_* the first non-finite point, or None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.finite import real, safe  # noqa: F401 - re-exported: the stored shape's spelling

MIN_LEVEL, MAX_LEVEL = 2, 10
LEVELS = tuple(range(MIN_LEVEL, MAX_LEVEL + 1))
Aggregate = dict[str, list[Any]]



def size(level: int) -> int:
    return 4 ** level




def point(step: int, metrics: Mapping[str, float]) -> Aggregate:
    """The aggregate of one row."""
    out: Aggregate = {}
    for name, value in metrics.items():
        finite = math.isfinite(value)
        v = value if finite else safe(value)
        lo = value if finite else None
        out[name] = [step, v, step, v, step if finite else None, lo, step if finite else None, lo, 1,
                     None if finite else step, None if finite else v]
    return out


def _merge_one(a: list[Any], b: list[Any]) -> list[Any]:
    """`a` covers steps before `b`'s: ties keep the earlier point."""
    lo_s, lo_v = (a[4], a[5]) if b[5] is None or (a[5] is not None and a[5] <= b[5]) else (b[4], b[5])
    hi_s, hi_v = (a[6], a[7]) if b[7] is None or (a[7] is not None and a[7] >= b[7]) else (b[6], b[7])
    nf_s, nf_v = (a[9], a[10]) if a[9] is not None else (b[9], b[10])
    return [a[0], a[1], b[2], b[3], lo_s, lo_v, hi_s, hi_v, a[8] + b[8], nf_s, nf_v]


def merge(a: Aggregate | None, b: Aggregate | None) -> Aggregate:
    """The aggregate of `a`'s range followed by `b`'s."""
    if not a:
        return dict(b or {})
    if not b:
        return dict(a)
    out = dict(a)
    for name, agg in b.items():
        mine = out.get(name)
        out[name] = list(agg) if mine is None else _merge_one(mine, agg)
    return out


def merge_all(aggregates: Iterable[Aggregate]) -> Aggregate:
    out: Aggregate = {}
    for agg in aggregates:
        out = merge(out, agg)
    return out


@dataclass
class Tail:
    """The open (incomplete) aggregate of each level, and how many rows the series has."""

    count: int = 0
    open: dict[int, Aggregate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "open": {str(k): v for k, v in self.open.items() if v}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Tail:
        if not data:
            return cls()
        return cls(int(data["count"]), {int(k): dict(v) for k, v in data.get("open", {}).items()})

    def start(self, level: int) -> int:
        """The first ordinal of the open bucket of `level`."""
        return self.count - self.count % size(level)


def _add_point(agg: Aggregate, step: int, metrics: Mapping[str, float]) -> None:
    """`merge(agg, point(step, metrics))` in place: the per-row hot path of `append`."""
    for name, value in metrics.items():
        finite = value - value == 0.0
        a = agg.get(name)
        if a is None:
            agg[name] = point(step, {name: value})[name]
            continue
        shown = value if finite else safe(value)
        a[2], a[3] = step, shown
        if finite:
            if a[5] is None or value < a[5]:
                a[4], a[5] = step, value
            if a[7] is None or value > a[7]:
                a[6], a[7] = step, value
        elif a[9] is None:
            a[9], a[10] = step, shown
        a[8] += 1


def append(tail: Tail, rows: Iterable[tuple[int, Mapping[str, float]]]) -> list[tuple[int, int, Aggregate]]:
    """Add rows (in step order, after every row already counted) to `tail`, in place.

    Returns the buckets completed on the way, as (level, bucket index, aggregate), to be stored.
    """
    done: list[tuple[int, int, Aggregate]] = []
    for step, metrics in rows:
        _add_point(tail.open.setdefault(MIN_LEVEL, {}), step, metrics)
        tail.count += 1
        level = MIN_LEVEL
        while level <= MAX_LEVEL and tail.count % size(level) == 0:
            agg = tail.open.pop(level, {})
            done.append((level, tail.count // size(level) - 1, agg))
            if level < MAX_LEVEL:
                tail.open[level + 1] = merge(tail.open.get(level + 1), agg)
            level += 1
    return done


# -- choosing what to read for a downsampled answer ------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """Part of a range: `raw` rows [lo, hi) by ordinal, or a stored complete `bucket` (level, index)."""

    kind: str
    level: int = 0
    index: int = 0
    lo: int = 0
    hi: int = 0


def level_for(rows: int, max_points: int) -> int:
    """The finest level whose buckets over `rows` rows number at most max_points (each gives up to 5
    candidate points per metric, the final choice thins them to max_points: the budget is used, not a
    quarter of it)."""
    for level in LEVELS:
        if rows / size(level) <= max_points:
            return level
    return MAX_LEVEL


def cover(lo: int, count: int, level: int) -> list[Piece]:
    """Pieces that exactly cover ordinals [lo, count): at each position the largest aligned, complete
    bucket of at most `level`, else raw rows up to the next MIN_LEVEL boundary (so at most 15 raw rows at
    each end of the range, and about count / 4**level buckets in between)."""
    pieces: list[Piece] = []
    pos = lo
    while pos < count:
        for k in range(level, MIN_LEVEL - 1, -1):
            if pos % size(k) == 0 and pos + size(k) <= count:
                pieces.append(Piece("bucket", k, pos // size(k)))
                pos += size(k)
                break
        else:
            stop = min(count, (pos // size(MIN_LEVEL) + 1) * size(MIN_LEVEL))
            if pieces and pieces[-1].kind == "raw" and pieces[-1].hi == pos:
                pieces[-1] = Piece("raw", lo=pieces[-1].lo, hi=stop)
            else:
                pieces.append(Piece("raw", lo=pos, hi=stop))
            pos = stop
    return pieces


def candidates(aggregates: Iterable[Aggregate], names: Iterable[str] | None = None
               ) -> dict[str, dict[int, float]]:
    """Per metric, the points the aggregates keep (first, last, min, max, first non-finite): step -> value."""
    wanted = None if names is None else set(names)
    out: dict[str, dict[int, float]] = {}
    for agg in aggregates:
        for name, a in agg.items():
            if wanted is not None and name not in wanted:
                continue
            points = out.get(name)
            if points is None:
                points = out[name] = {}
            # (step, value) pairs at 0/1 first, 2/3 last, 4/5 min, 6/7 max, 9/10 first non-finite
            for i in (0, 2, 4, 6, 9):
                step = a[i]
                if step is not None:
                    value = a[i + 1]
                    points[step] = real(value) if value.__class__ is str else value
    return out
