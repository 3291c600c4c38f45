"""The read-model tests run against both stores: SQLite files and PostgreSQL schemas."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.postgres import PostgresStore
from tests.postgres import fresh_database

MakeWriter = Callable[..., ReadModelWriter]


@pytest.fixture(scope="module")
def _module_postgres() -> Iterator[str]:
    with fresh_database() as url:  # one database per module; every writer gets a schema of its own
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def make_writer(request, tmp_path_factory) -> Iterator[MakeWriter]:
    """make_writer(**kw): a writer of a new, empty read model in the parametrized store (kw: durable=False,
    future_skew_s=...)."""
    opened: list[ReadModelWriter] = []

    def make(**kw) -> ReadModelWriter:
        kw.setdefault("durable", False)
        if request.param == "sqlite":
            writer = ReadModelWriter(tmp_path_factory.mktemp("rm") / "rm.sqlite", **kw)
        else:
            store = PostgresStore(request.getfixturevalue("_module_postgres"))
            writer = ReadModelWriter(f"test_{uuid.uuid4().hex[:12]}", store=store, **kw)
        opened.append(writer)
        return writer

    yield make
    for writer in opened:
        writer.close()
