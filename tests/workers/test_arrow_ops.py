"""first_per_key: the one dedupe rule behind the log reader and the projections."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from workers.arrow_ops import first_per_key


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 100)), max_size=40))
def test_keeps_exactly_the_first_row_of_each_key_after_sorting(rows):
    table = pa.table({"k": [k for k, _ in rows], "v": [v for _, v in rows]}, schema=pa.schema(
        [("k", pa.int64()), ("v", pa.int64())]))
    kept = first_per_key(table.sort_by([("k", "ascending"), ("v", "descending")]), ["k"]).to_pylist()
    expected = {k: max(v for kk, v in rows if kk == k) for k, _ in rows}
    assert [(r["k"], r["v"]) for r in kept] == sorted(expected.items())
