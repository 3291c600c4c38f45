"""A PostgreSQL database of its own for a test: created with a unique name, dropped (forcibly) afterwards.

The server is the one at EPOCHSTREAM_TEST_POSTGRES (default: the local one, user postgres); only databases
this helper created are ever dropped. Where no server answers, the tests that need one are skipped with
the reason, except where EPOCHSTREAM_TEST_POSTGRES_REQUIRED=1 (CI sets it: a machine that should have the
server fails those tests instead of skipping them unseen).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

ADMIN_URL = os.environ.get("EPOCHSTREAM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "epochstream_test_"


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL at {ADMIN_URL} ({str(exc).splitlines()[0]}): set EPOCHSTREAM_TEST_POSTGRES"
        if os.environ.get("EPOCHSTREAM_TEST_POSTGRES_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def url_of(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


@contextlib.contextmanager
def fresh_database(icu_locale: str | None = None) -> Iterator[str]:
    """The URL of a new, empty database, dropped when the block ends. `icu_locale` ("en-US"): its default
    collation is that language's (where "B" sorts after "a"), not the server's."""
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if icu_locale:
        create += sql.SQL(" TEMPLATE template0 LOCALE_PROVIDER icu LOCALE 'C.UTF-8' ICU_LOCALE {}").format(
            sql.Literal(icu_locale))
    with _admin() as admin:
        admin.execute(create)
    try:
        yield url_of(name)
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
