"""Where a run's events go: its partition's stream and its attempt's dedupe key (`producer.attempts`),
and back from a record's dedupe key to the run's identity, so what the publisher drops lands in that
run's report. A spooled record is re-homed on its way out (`rehomed`): one spooled by a process that
counted partitions differently goes where this deployment reads it."""

from __future__ import annotations

import weakref

from producer.drafts import RunIdentity
from producer.spool import Record
from schemas.keys import Keys

MAX_ROUTES = 10_000


class Routes:
    def __init__(self, keys: Keys):
        self.keys = keys
        self._routes: dict[tuple[str, int | None], tuple[str, str]] = {}
        self._runs: weakref.WeakValueDictionary[str, RunIdentity] = weakref.WeakValueDictionary()
        self._homes: dict[tuple[str, str], tuple[str, str]] = {}
        self._reuse_told: set[str] = set()  # runs whose reuse of an id was reported

    def of(self, run_id: str, identity: RunIdentity | None) -> tuple[str, str]:
        """(stream, dedupe key) of a run's attempt; a bare event without its run is deduplicated by the run's
        mark, as older producers did."""
        start = identity.seq_start if identity is not None else None
        route = self._routes.get((run_id, start))
        if route is None:
            if len(self._routes) > MAX_ROUTES:
                self._routes.clear()
            seq_key = self.keys.run_seq(run_id) if start is None else self.keys.attempt_seq(run_id, start)
            route = self._routes[(run_id, start)] = (self.keys.stream_for_run(run_id), seq_key)
            if identity is not None:
                self._runs[seq_key] = identity
        return route

    def run_of(self, seq_key: str) -> RunIdentity | None:
        """The live run whose attempt this dedupe key is, or None (a dead process's record, a bare event)."""
        return self._runs.get(seq_key)

    def rehomed(self, records: list[Record]) -> list[Record]:
        """`records` routed as this process routes them (the same records, unless another partition count
        routed them)."""
        out = records
        for i, record in enumerate(records):
            where = (record.stream, record.seq_key)
            home = self._homes.get(where)
            if home is None:
                if len(self._homes) > MAX_ROUTES:
                    self._homes.clear()
                home = self._homes[where] = self.keys.rerouted(*where)
            if home != where:
                if out is records:
                    out = list(records)
                out[i] = record._replace(stream=home[0], seq_key=home[1])
        return out

    def newly_reused(self, before: dict[str, tuple[int, int]]) -> list[tuple[RunIdentity, int]]:
        """(run, the run's mark) for each run that started without being able to ask whether its explicit id
        had events, and whose first delivery found the run's mark set by another attempt (see `send`'s
        `before`). Each run is reported once."""
        out = []
        for seq_key, (attempt_mark, run_mark) in before.items():
            identity = self._runs.get(seq_key)
            if identity is not None and identity.unchecked_reuse and not attempt_mark and run_mark \
                    and seq_key not in self._reuse_told:
                self._reuse_told.add(seq_key)
                out.append((identity, run_mark))
        return out
