"""Step rollups: buckets folded a row at a time equal the brute-force aggregate of their rows, and any
range is covered exactly, keeping every extreme a downsampled curve must show."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from schemas.rollups import (
    LEVELS,
    MIN_LEVEL,
    Tail,
    append,
    candidates,
    cover,
    level_for,
    merge_all,
    point,
    size,
)

values = st.floats(allow_nan=True, allow_infinity=True, width=64)
series = st.lists(st.dictionaries(st.sampled_from(["a", "b"]), values, min_size=1), min_size=0, max_size=400)


def rows_of(metric_rows):
    return [(3 * i + 1, m) for i, m in enumerate(metric_rows)]  # sparse step numbers: buckets go by ordinal


@given(series, st.lists(st.integers(1, 50), max_size=8))
def test_completed_buckets_equal_the_merge_of_their_rows(metric_rows, chunk_sizes):
    rows = rows_of(metric_rows)
    tail, done, pos = Tail(), {}, 0
    for n in [*chunk_sizes, len(rows)]:
        for level, index, agg in append(tail, rows[pos:pos + n]):
            done[(level, index)] = agg
        pos = min(pos + n, len(rows))
    assert tail.count == len(rows)
    for level in LEVELS:
        for index in range(len(rows) // size(level)):
            part = rows[index * size(level):(index + 1) * size(level)]
            assert done[(level, index)] == merge_all(point(s, m) for s, m in part)
    assert len(done) == sum(len(rows) // size(level) for level in LEVELS)


@given(st.integers(0, 5000), st.integers(0, 5000), st.sampled_from(LEVELS))
def test_cover_tiles_the_range_with_complete_aligned_buckets(a, b, level):
    lo, count = min(a, b), max(a, b)
    pieces = cover(lo, count, level)
    pos = lo
    raw = 0
    for piece in pieces:
        if piece.kind == "raw":
            assert piece.lo == pos
            raw += piece.hi - piece.lo
            pos = piece.hi
        else:
            start = piece.index * size(piece.level)
            assert start == pos and start + size(piece.level) <= count and piece.level <= level
            pos += size(piece.level)
    assert pos == count
    assert raw <= 2 * (size(MIN_LEVEL) - 1)


def _extremes(rows, name):
    finite = [(v, s) for s, m in rows if name in m and math.isfinite(v := m[name])]
    present = [s for s, m in rows if name in m]
    bad = [s for s, m in rows if name in m and not math.isfinite(m[name])]
    out = set()
    if present:
        out |= {present[0], present[-1]}
    if finite:
        out |= {min(finite)[1], min(finite, key=lambda t: (-t[0], t[1]))[1]}
    if bad:
        out.add(bad[0])
    return out


@given(series, st.integers(0, 400), st.integers(2, 300))
def test_candidates_from_a_cover_keep_first_last_min_max_and_first_non_finite(metric_rows, lo, max_points):
    rows = rows_of(metric_rows)
    lo = min(lo, len(rows))
    tail = Tail()
    stored = {(level, index): agg for level, index, agg in append(tail, rows)}
    pieces = cover(lo, len(rows), level_for(len(rows) - lo, max_points))
    aggs = [merge_all(point(s, m) for s, m in rows[p.lo:p.hi]) if p.kind == "raw" else stored[(p.level, p.index)]
            for p in pieces]
    got = candidates(aggs)
    for name in ("a", "b"):
        assert _extremes(rows[lo:], name) <= set(got.get(name, {}))
