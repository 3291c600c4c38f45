"""The runs listing as SQL: filters, sorts and keyset cursors. Pure: builds statements, runs none.

Every sort is (column, run_id) in one direction, served by an index on exactly those columns, and a
cursor is the last row's (value, run_id): the next page starts strictly after it, so runs that start
meanwhile never shift or repeat later pages. `stale` is decided at read time: a `running` run whose
`stale_after_us` (last event + max(3 x heartbeat, 60 s)) has passed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from epochstream.readmodel.dialect import SQLITE, Dialect

Sort = Literal["newest", "oldest", "best", "best_desc", "epochs"]
SORTS: dict[str, tuple[str, str]] = {  # name -> (column, direction)
    "newest": ("sort_us", "DESC"),
    "oldest": ("sort_us", "ASC"),
    "best": ("best_asc", "ASC"),  # lowest best value first; runs without one last
    "best_desc": ("best_desc", "ASC"),  # highest first (the column holds -best); runs without one last
    "epochs": ("epochs", "DESC"),
}
DYNAMIC = ("running", "stale")
LIST_COLUMNS = "run_id, summary, version, stale_after_us, trend_state"


class BadCursor(ValueError):
    def __init__(self, detail: str = ""):
        super().__init__("cursor is not one this API returned for this sort; pass `next_cursor` from the previous "
                         "page as is" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class RunQuery:
    project: str | None = None
    status: str | None = None
    tag: str | None = None
    name_prefix: str | None = None
    search: str | None = None  # a substring of the name or run id (a scan: use with other filters on big sets)
    sort: Sort = "newest"
    limit: int = 50
    cursor: str | None = None


def encode_cursor(sort: str, value: Any, run_id: str) -> str:
    raw = json.dumps([sort, value, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:  # Recursion: [[[[...
        raise BadCursor(type(exc).__name__) from None
    if not (isinstance(value, list) and len(value) == 3 and value[0] == sort and isinstance(value[2], str)
            and (value[1] is None or isinstance(value[1], int | float))):
        raise BadCursor("wrong shape or another sort")
    return value[1], value[2]


def _filters(query: RunQuery, now_us: int, dialect: Dialect) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.project is not None:
        where.append("project = ?")
        params.append(query.project)
    if query.status == "running":
        where.append("status = 'running' AND (stale_after_us IS NULL OR stale_after_us >= ?)")
        params.append(now_us)
    elif query.status == "stale":
        where.append("status = 'running' AND stale_after_us < ?")
        params.append(now_us)
    elif query.status is not None:
        where.append("status = ?")
        params.append(query.status)
    if query.tag is not None:
        where.append("run_id IN (SELECT run_id FROM run_tags WHERE tag = ?)")
        params.append(query.tag)
    if query.name_prefix:
        where.append("name >= ? AND name < ?")
        params += [query.name_prefix, query.name_prefix + "\U0010ffff"]
    if query.search:
        where.append(dialect.contains("lower(coalesce(name, '') || ' ' || run_id)", "lower(?)"))
        params.append(query.search)
    return where, params


def page_sql(query: RunQuery, now_us: int, dialect: Dialect = SQLITE) -> tuple[str, list[Any], str]:
    """(SELECT for one page plus one row, its parameters, the sort column)."""
    column, direction = SORTS[query.sort]
    where, params = _filters(query, now_us, dialect)
    if query.cursor is not None:
        value, run_id = decode_cursor(query.cursor, query.sort)
        where.append(f"({column}, run_id) {'<' if direction == 'DESC' else '>'} (?, ?)")
        params += [value, run_id]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (f"SELECT {LIST_COLUMNS}, {column} FROM runs {clause} "
           f"ORDER BY {column} {direction}, run_id {direction} LIMIT ?")
    return sql, [*params, query.limit + 1], column


def count_sql(query: RunQuery, now_us: int, dialect: Dialect = SQLITE) -> tuple[str, list[Any]]:
    where, params = _filters(query, now_us, dialect)
    return f"SELECT count(*) FROM runs {'WHERE ' + ' AND '.join(where) if where else ''}", params
