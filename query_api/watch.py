"""Long-poll support: one asyncio task watches the files that waiting requests care about.

A waiter registers the paths its response is made from and the identities it has already seen. The
watcher stats each watched path once per tick, whatever the number of waiters, and wakes every waiter
whose files changed. No thread per waiter and nothing blocks the event loop; when nobody waits, the
task ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from query_api.filecache import FileKey, stat_key


@dataclass(eq=False)
class _Waiter:
    paths: tuple[Path, ...]
    seen: tuple[FileKey | None, ...]
    future: asyncio.Future = field(repr=False)


class ChangeWatcher:
    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task | None = None

    async def wait(self, paths: Sequence[Path], seen: Sequence[FileKey | None], timeout_s: float) -> bool:
        """True as soon as any of `paths` no longer has the identity in `seen`; False after `timeout_s`."""
        paths, seen = tuple(paths), tuple(seen)
        if tuple(stat_key(p) for p in paths) != seen:
            return True
        loop = asyncio.get_running_loop()
        waiter = _Waiter(paths, seen, loop.create_future())
        self._waiters.add(waiter)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        try:
            return await asyncio.wait_for(waiter.future, timeout_s)
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)

    async def _run(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.interval_s)
            keys: dict[Path, FileKey | None] = {}
            for waiter in list(self._waiters):
                now = tuple(keys[p] if p in keys else keys.setdefault(p, stat_key(p)) for p in waiter.paths)
                if now != waiter.seen and not waiter.future.done():
                    waiter.future.set_result(True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
