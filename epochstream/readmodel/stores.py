"""Which database holds the read model (`Settings.read_model_url`), and the calls both kinds answer.

    empty          SQLite files under `<data_dir>/readmodel/` (`location.Location`): one host
    postgresql://  PostgreSQL, one schema per generation (`postgres.PostgresStore`): many worker and API hosts

A store knows where the generation in use is and how to make, swap and retire one; how to open the
writer's connection and run one write transaction on it; and how a reader follows the generation in use
(`reader_link`). The writer, the reader and `rebuild` use only these calls, and SQL both dialects run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

from epochstream.errors import ConfigurationError
from epochstream.readmodel.dialect import Dialect
from epochstream.readmodel.location import Location

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class ReaderLink(Protocol):
    generation: str | None

    def refresh(self) -> bool: ...
    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]: ...
    def data_version(self) -> int: ...
    def close(self) -> None: ...


class Store(Protocol):
    dialect: Dialect

    def describe(self) -> str: ...
    def current(self) -> tuple[str, Any] | None: ...
    def current_or_create(self) -> tuple[str, Any]: ...
    def open_current(self) -> tuple[str, Any, Any]: ...
    def new_generation(self) -> str: ...
    def retire_old(self) -> list: ...
    def connect_writer(self, target: Any, *, durable: bool = True) -> Any: ...
    def schema_version(self, con: Any) -> int | None: ...
    def transaction(self, con: Any, partition: int, *, durable: bool = True) -> contextlib.AbstractContextManager: ...
    def reader_link(self) -> ReaderLink: ...
    def building_target(self, generation: str) -> Any: ...
    def finish_building(self, con: Any) -> None: ...
    def swap_in(self, generation: str, target: Any) -> None: ...
    def discard_building(self, target: Any) -> None: ...


def store_for(data_dir: Path, url: str | None = None) -> Store:
    """The store `read_model_url` names (psycopg is imported only for a PostgreSQL one)."""
    if not url:
        return Location.of(data_dir)
    if url.startswith(POSTGRES_SCHEMES):
        from epochstream.readmodel.postgres import PostgresStore

        return PostgresStore(url)
    scheme = url.split("://", 1)[0] if "://" in url else url[:20]
    raise ConfigurationError(f"EPOCHSTREAM_READ_MODEL_URL must be empty (SQLite under the data directory) or a "
                             f"postgresql://user@host:port/database URL, not one starting {scheme!r}")
