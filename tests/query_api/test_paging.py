"""Cursor pagination: pages cover every accepted row once, newest first, whatever the page size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_api.paging import BadCursor, decode_cursor, encode_cursor, walk

keys = st.lists(st.tuples(st.sampled_from(["", "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"]),
                          st.text(min_size=1, max_size=5)), unique=True, max_size=60).map(sorted)


@settings(max_examples=200, deadline=None)
@given(keys, st.integers(min_value=1, max_value=10), st.sets(st.integers(min_value=0, max_value=59)))
def test_pages_cover_everything_once(sorted_keys, limit, rejected):
    accept = (lambda i: i not in rejected) if rejected else None
    seen, after = [], None
    for _ in range(100):
        indices, next_key = walk(sorted_keys, limit, after, accept)
        assert len(indices) <= limit
        seen.extend(indices)
        if next_key is None:
            break
        after = decode_cursor(encode_cursor(next_key))
    expected = [i for i in reversed(range(len(sorted_keys))) if i not in rejected]
    assert seen == expected


@pytest.mark.parametrize("bad", ["%%%", "bm90IGpzb24", encode_cursor(("a", "b"))[:-3] + "x", "WzFd"])
def test_bad_cursor(bad):
    with pytest.raises(BadCursor):
        decode_cursor(bad)
