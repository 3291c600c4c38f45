"""Reading the read model in tests, through the same reader the API uses."""

from __future__ import annotations

import sqlite3
from typing import Any

from epochstream.readmodel.compare import canonical
from epochstream.readmodel.postgres import PostgresStore
from epochstream.readmodel.reader import ReadModelReader
from epochstream.readmodel.stores import store_for
from epochstream.settings import Settings


def reader_of(settings: Settings) -> ReadModelReader:
    return ReadModelReader(settings.data_dir, settings.read_model_url)


def summary(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's stored summary (with its config), or None when the read model has no such run."""
    reader = reader_of(settings)
    try:
        record = reader.run(run_id)
        return None if record is None else {**record.summary, "config": record.config,
                                            "versions": record.versions}
    finally:
        reader.close()


def epoch_numbers(settings: Settings, run_id: str) -> list[int]:
    reader = reader_of(settings)
    try:
        return [e.epoch for e in reader.epochs(run_id)]
    finally:
        reader.close()


def run_ids(settings: Settings) -> list[str]:
    reader = reader_of(settings)
    try:
        return sorted(s["run_id"] for s, _, _ in reader.all_runs())
    finally:
        reader.close()


def content(settings: Settings) -> dict[str, Any]:
    """Everything in the read model in use, without what may differ between two of the same events."""
    store = store_for(settings.data_dir, settings.read_model_url)
    current = store.current()
    assert current is not None, "no read model yet"
    if isinstance(store, PostgresStore):
        con = store.connect(read_only=True)
        con.use_schema(current[1])
    else:
        con = sqlite3.connect(f"file:{current[1]}?mode=ro", uri=True)
    try:
        return canonical(con)
    finally:
        con.close()


def unfinished(settings: Settings) -> list[Any]:
    """What rebuilds killed before their swap left: `building-*` files, or `building_*` schemas."""
    store = store_for(settings.data_dir, settings.read_model_url)
    if isinstance(store, PostgresStore):
        return store.unfinished()
    directory = store.directory
    return list(directory.glob("building-*")) if directory.exists() else []
