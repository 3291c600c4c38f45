"""The runs listing's SQL and cursors (`epochstream.readmodel.listing`), pure: statements built for any filters
and sort, run on an in-memory SQLite with the read model's own tables, against a plain Python model."""

from __future__ import annotations

import base64
import math
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from epochstream.readmodel.database import DDL
from epochstream.readmodel.dialect import POSTGRES, SQLITE, Dialect
from epochstream.readmodel.listing import SORTS, BadCursor, RunQuery, count_sql, decode_cursor, encode_cursor, page_sql
from epochstream.readmodel.postgres import PostgresStore
from tests.postgres import fresh_database

NOW_US = 1_000_000


@dataclass(frozen=True)
class Row:
    run_id: str
    project: str | None
    name: str | None
    status: str
    sort_us: int
    stale_after_us: int | None
    best: float | None
    epochs: int
    tags: frozenset[str]


def matches(row: Row, q: RunQuery) -> bool:
    status_ok = {
        None: True,
        "running": row.status == "running" and (row.stale_after_us is None or row.stale_after_us >= NOW_US),
        "stale": row.status == "running" and row.stale_after_us is not None and row.stale_after_us < NOW_US,
    }.get(q.status, row.status == q.status)
    return (status_ok and (q.project is None or row.project == q.project) and (q.tag is None or q.tag in row.tags)
            and (not q.name_prefix or (row.name or "\0").startswith(q.name_prefix))
            and (not q.search or q.search.lower() in f"{row.name or ''} {row.run_id}".lower()))


def sort_key(row: Row, sort: str) -> tuple:
    best = math.inf if row.best is None else row.best
    return {"newest": (row.sort_us, row.run_id), "oldest": (row.sort_us, row.run_id), "best": (best, row.run_id),
            "best_desc": (math.inf if row.best is None else -best, row.run_id),
            "epochs": (row.epochs, row.run_id)}[sort]


def expected(rows: list[Row], q: RunQuery) -> list[str]:
    chosen = sorted((r for r in rows if matches(r, q)), key=lambda r: sort_key(r, q.sort),
                    reverse=SORTS[q.sort][1] == "DESC")
    return [r.run_id for r in chosen]


def database(rows: list[Row], store: PostgresStore | None = None) -> Any:
    """The rows in a fresh in-memory SQLite, or in a fresh schema of `store` (PostgreSQL)."""
    if store is None:
        con = sqlite3.connect(":memory:")
        con.executescript(DDL)
    else:
        con = store.connect_writer(f"listing_{uuid.uuid4().hex[:12]}")
    for r in rows:
        best_asc, best_desc = (math.inf, math.inf) if r.best is None else (r.best, -r.best)
        con.execute("INSERT INTO runs (run_id, partition, project, name, status, sort_us, stale_after_us, best_asc, "
                    "best_desc, epochs, version, summary) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, 1, '{}')",
                    (r.run_id, r.project, r.name, r.status, r.sort_us, r.stale_after_us, best_asc, best_desc,
                     r.epochs))
        con.executemany("INSERT INTO run_tags VALUES (?, ?)", [(t, r.run_id) for t in r.tags])
    return con


def walk(con: Any, q: RunQuery, dialect: Dialect = SQLITE) -> list[str]:
    """Every page, as the reader does: one row more than the page says whether a cursor follows."""
    out: list[str] = []
    cursor = None
    for _ in range(1000):
        page = RunQuery(**{**q.__dict__, "cursor": cursor})
        sql, params, _ = page_sql(page, NOW_US, dialect)
        rows = con.execute(sql, params).fetchall()
        more = len(rows) > q.limit
        rows = rows[:q.limit]
        out += [r[0] for r in rows]
        if not more:
            return out
        cursor = encode_cursor(q.sort, rows[-1][5], rows[-1][0])
    raise AssertionError("the pages never end")


WORDS = st.sampled_from(["a", "b", "ab", "Ab", "res", "resnet", "vit", "x-1"])
rows_strategy = st.lists(st.builds(
    Row, run_id=st.text("abcxyz019-", min_size=1, max_size=6), project=st.none() | st.sampled_from(["p", "q"]),
    name=st.none() | WORDS, status=st.sampled_from(["running", "completed", "failed", "interrupted"]),
    sort_us=st.integers(0, 4), stale_after_us=st.none() | st.sampled_from([NOW_US - 1, NOW_US, NOW_US + 1]),
    best=st.none() | st.sampled_from([-1.5, 0.0, 0.25, 0.25000000000000006, 3.0, math.inf, -math.inf]),
    epochs=st.integers(0, 3), tags=st.frozensets(st.sampled_from(["gpu", "cpu", "t"]), max_size=2)),
    max_size=14, unique_by=lambda r: r.run_id)
queries = st.builds(
    RunQuery, project=st.none() | st.sampled_from(["p", "q"]),
    status=st.none() | st.sampled_from(["running", "stale", "completed", "failed", "interrupted"]),
    tag=st.none() | st.sampled_from(["gpu", "t"]), name_prefix=st.none() | WORDS, search=st.none() | WORDS,
    sort=st.sampled_from(sorted(SORTS)), limit=st.integers(1, 5))


BOUNDARY = [Row(f"r{d}", None, None, "running", 0, NOW_US + d, None, 0, frozenset()) for d in (-1, 0, 1)]


@settings(max_examples=80, deadline=None)
@given(rows_strategy, queries)
@example(BOUNDARY, RunQuery(status="stale"))  # a run is stale once its stale_after has passed, not at it
@example(BOUNDARY, RunQuery(status="running"))
def test_pages_walk_every_matching_run_once_in_the_promised_order(rows, q):
    con = database(rows)
    want = expected(rows, q)
    assert walk(con, q) == want
    sql, params = count_sql(q, NOW_US)
    assert con.execute(sql, params).fetchone()[0] == len(want)


@pytest.fixture(scope="module")
def postgres_store():
    with fresh_database(icu_locale="en-US") as url:  # a language collation: the read model must not follow it
        yield PostgresStore(url)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows_strategy, queries)
@example(BOUNDARY, RunQuery(status="stale"))
@example([Row("B", None, "Zed", "running", 0, None, None, 0, frozenset()),
          Row("a", None, "alpha", "running", 0, None, None, 0, frozenset())], RunQuery(sort="oldest", limit=1))
def test_postgresql_walks_the_same_pages_in_the_same_order(postgres_store, rows, q):
    """Byte-wise text order (upper case before lower, as in SQLite), infinities and keyset cursors agree."""
    con = database(rows, postgres_store)
    try:
        want = expected(rows, q)
        assert walk(con, q, POSTGRES) == want
        sql, params = count_sql(q, NOW_US, POSTGRES)
        assert con.execute(sql, params).fetchone()[0] == len(want)
    finally:
        con.close()


def test_the_sql_binds_every_value_and_interpolates_none():
    q = RunQuery(project="p'; DROP TABLE runs; --", status="failed", tag="t'", name_prefix="n'", search="s'",
                 sort="best")
    sql, params, column = page_sql(RunQuery(**{**q.__dict__, "cursor": encode_cursor("best", 1.5, "r'")}), NOW_US)
    assert column == "best_asc" and not [v for v in ("DROP", "t'", "n'", "s'", "r'", "1.5") if v in sql]
    assert params == [q.project, "failed", "t'", "n'", "n'\U0010ffff", "s'", 1.5, "r'", q.limit + 1]
    assert database([]).execute(sql, params).fetchall() == []


cursor_values = st.none() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)


@given(st.sampled_from(sorted(SORTS)), cursor_values, st.text(max_size=40))
def test_a_cursor_round_trips_for_its_own_sort_only(sort, value, run_id):
    cursor = encode_cursor(sort, value, run_id)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")  # URL-safe as is
    got = decode_cursor(cursor, sort)
    assert got == (value, run_id) and type(got[0]) is type(value)
    for other in set(SORTS) - {sort}:
        with pytest.raises(BadCursor):
            decode_cursor(cursor, other)


@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.urlsafe_b64encode(b).decode()))
def test_any_other_text_is_a_bad_cursor_or_a_valid_one_never_another_error(text):
    try:
        value, run_id = decode_cursor(text, "newest")
    except BadCursor:
        return
    assert isinstance(run_id, str) and (value is None or isinstance(value, int | float))


@pytest.mark.parametrize("payload", [b"[" * 100_000, b'["newest", ' + b"[" * 100_000, b'{"a": 1}', b'"newest"',
                                     b'["newest", "1", "r"]', b'["newest", 1, 2]', b"\xff\xfe"])
def test_hostile_cursors_are_bad_cursors(payload):
    with pytest.raises(BadCursor):
        decode_cursor(base64.urlsafe_b64encode(payload).decode().rstrip("="), "newest")
