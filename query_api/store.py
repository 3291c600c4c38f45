"""The read side of storage: the read model, opened read-only, never written.

Identities are cheap (`versions`: one indexed row, read on the event loop); anything bigger is read in a
worker thread and cached by (generation, run, version), so a poll for unchanged data costs one point
query, and a changed run is parsed once for every poller.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from epochstream.errors import TerminalError
from epochstream.readmodel.reader import ReadModelReader, RunRecord, Versions
from query_api.limits import CACHE_ENTRIES
from query_api.series import EpochSeries, SystemPoint, epoch_series, system_series
from schemas.envelope import RUN_ID_PATTERN

_RUN_ID = re.compile(RUN_ID_PATTERN)
T = TypeVar("T")


class RunNotFound(TerminalError, LookupError):
    def __init__(self, run_id: str):
        super().__init__(f"no run {run_id!r} in this data directory (see GET /runs for the runs there are)")


class _Cache:
    """An LRU of parsed values keyed by (kind, run id) and checked against the version they were read at."""

    def __init__(self, max_entries: int):
        self._max = max_entries
        self._entries: OrderedDict[tuple, tuple[tuple, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, version: tuple) -> Any | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] != version:
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def put(self, key: tuple, version: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = (version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


@dataclass
class RunStore:
    reader: ReadModelReader
    _cache: _Cache = field(default_factory=lambda: _Cache(CACHE_ENTRIES))

    def check_id(self, run_id: str) -> None:
        if not _RUN_ID.match(run_id):
            raise RunNotFound(run_id)

    def versions(self, run_id: str) -> Versions:
        """The run's change counters (a point query): RunNotFound if there is no such run."""
        self.check_id(run_id)
        found = self.reader.versions(run_id)
        if found is None:
            raise RunNotFound(run_id)
        return found

    def find_versions(self, run_id: str) -> Versions | None:
        return self.reader.versions(run_id) if _RUN_ID.match(run_id) else None

    async def _cached(self, kind: str, run_id: str, version: tuple, load: Callable[[], T]) -> T:
        hit = self._cache.get((kind, run_id), version)
        if hit is not None:
            return hit
        value = await anyio.to_thread.run_sync(load)
        self._cache.put((kind, run_id), version, value)
        return value

    async def run(self, run_id: str, versions: Versions) -> RunRecord:
        def load() -> RunRecord:
            record = self.reader.run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            return record
        return await self._cached("run", run_id, (versions.generation, versions.version), load)

    async def history(self, run_id: str, versions: Versions) -> EpochSeries:
        return await self._cached("epochs", run_id, (versions.generation, versions.epochs),
                                  lambda: epoch_series(self.reader.epochs(run_id)))

    async def system(self, run_id: str, versions: Versions) -> list[SystemPoint]:
        return await self._cached("system", run_id, (versions.generation, versions.system),
                                  lambda: system_series(self.reader.system(run_id, None)))

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)
