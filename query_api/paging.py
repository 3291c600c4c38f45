"""Cursor pagination over a listing sorted newest first. Pure: no I/O.

A cursor is the sort key of the last row a page returned, base64url-encoded JSON. The next page holds
the rows strictly older than it, so runs that start meanwhile never shift or repeat later pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left
from collections.abc import Callable, Sequence

SortKey = tuple[str, str]  # (time as UTC ISO-8601 text, or "" when unknown; run_id)


class BadCursor(ValueError):
    def __init__(self, detail: str = ""):
        super().__init__("cursor is not one this API returned; pass `next_cursor` from the previous page as is"
                         + (f" ({detail})" if detail else ""))


def encode_cursor(key: SortKey) -> str:
    raw = json.dumps([key[0], key[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(type(exc).__name__) from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise BadCursor("wrong shape")
    return value[0], value[1]


def walk(keys_ascending: Sequence[SortKey], limit: int, after: SortKey | None = None,
         accept: Callable[[int], bool] | None = None) -> tuple[list[int], SortKey | None]:
    """Indices (into `keys_ascending`) of the next `limit` accepted rows newest first, and the next cursor.

    `after` is the cursor key of the previous page (None: start at the newest row). `accept` filters rows
    whose eligibility is only known at read time. The next cursor is None when no older accepted row is left.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    i = (len(keys_ascending) if after is None else bisect_left(keys_ascending, after)) - 1
    out: list[int] = []
    while i >= 0:
        if accept is None or accept(i):
            if len(out) == limit:
                return out, keys_ascending[out[-1]]
            out.append(i)
        i -= 1
    return out, None
