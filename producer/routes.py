"""Where a run's events go: its partition's stream and its attempt's dedupe key (`producer.attempts`),
and back from a record's dedupe key to the run, so what the publisher drops lands in that run's report."""

from __future__ import annotations

import weakref
from typing import Any

from schemas.keys import Keys

MAX_ROUTES = 10_000


class Routes:
    def __init__(self, keys: Keys):
        self.keys = keys
        self._routes: dict[tuple[str, int | None], tuple[str, str]] = {}
        self._runs: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()  # dedupe key -> run

    def of(self, run_id: str, run: Any) -> tuple[str, str]:
        """(stream, dedupe key) of a run's attempt; a bare event without its run is deduplicated by the run's
        mark, as older producers did."""
        start = getattr(run, "seq_start", None)
        route = self._routes.get((run_id, start))
        if route is None:
            if len(self._routes) > MAX_ROUTES:
                self._routes.clear()
            seq_key = self.keys.run_seq(run_id) if start is None else self.keys.attempt_seq(run_id, start)
            route = self._routes[(run_id, start)] = (self.keys.stream_for_run(run_id), seq_key)
            if run is not None:
                self._runs[seq_key] = run
        return route

    def run_of(self, seq_key: str) -> Any:
        """The live run whose attempt this dedupe key is, or None (a dead process's record, a bare event)."""
        return self._runs.get(seq_key)

    def newly_reused(self, before: dict[str, tuple[int, int]]) -> list[tuple[Any, int]]:
        """(run, the run's mark) for each run that started without being able to ask whether its explicit id
        had events, and whose first delivery found the run's mark set by another attempt (see `send`'s
        `before`). Each run is reported once."""
        out = []
        for seq_key, (attempt_mark, run_mark) in before.items():
            run = self._runs.get(seq_key)
            if run is not None and not attempt_mark and run_mark and getattr(run, "unchecked_reuse", False):
                run.unchecked_reuse = False
                out.append((run, run_mark))
        return out
