"""Long-poll support: one asyncio task watches the read model for the requests that wait on it.

A waiter registers a cheap `identity()` (the version counters its answer is made of) and the identity it
has already seen. Every tick the task asks the database whether anything was committed since the last
tick (`ReadModelReader.data_version`: SQLite's `PRAGMA data_version`, no rows read; PostgreSQL's sum of the
partitions' batch counters, one small read); only then does it re-check the waiters' identities, and wakes
those whose data changed. No thread per waiter and nothing blocks the event loop for long; when nobody
waits, the task ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from epochstream.readmodel.reader import ReadModelReader

Identity = Callable[[], Any]


@dataclass(eq=False)
class _Waiter:
    identity: Identity
    seen: Any
    future: asyncio.Future = field(repr=False)


class ChangeWatcher:
    def __init__(self, reader: ReadModelReader, interval_s: float):
        self.reader = reader
        self.interval_s = interval_s
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task | None = None

    async def wait(self, identity: Identity, seen: Any, timeout_s: float) -> bool:
        """True as soon as `identity()` differs from `seen` (or raises); False after `timeout_s`."""
        if self._changed(identity, seen):
            return True
        loop = asyncio.get_running_loop()
        waiter = _Waiter(identity, seen, loop.create_future())
        self._waiters.add(waiter)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        try:
            return await asyncio.wait_for(waiter.future, timeout_s)
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)

    @staticmethod
    def _changed(identity: Identity, seen: Any) -> bool:
        try:
            return identity() != seen
        except Exception:  # noqa: BLE001 - a run that vanished or a read that failed: let the request re-check
            return True

    async def _run(self) -> None:
        last = self.reader.data_version()
        while self._waiters:
            await asyncio.sleep(self.interval_s)
            try:
                now = self.reader.data_version()
            except Exception:  # noqa: BLE001 - a busy or swapping database: check the waiters anyway
                now = None
            if now == last:
                continue
            last = now
            for waiter in list(self._waiters):
                if not waiter.future.done() and self._changed(waiter.identity, waiter.seen):
                    waiter.future.set_result(True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
