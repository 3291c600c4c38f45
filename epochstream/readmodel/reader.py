"""Reading the read model: read-only connections (one per thread) that follow a rebuild's swap.

Before each query the reader's link (`stores.ReaderLink`) checks the generation in use — SQLite: the
identity of `readmodel/CURRENT` (one `stat`); PostgreSQL: the pointer row — and after a swap moves to the
new generation; until then it keeps reading the old one, which stays whole. No read can write: SQLite
connections are opened `mode=ro` with `query_only`, PostgreSQL sessions with `default_transaction_read_only`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from epochstream.readmodel.errors import ReadModelDamaged
from epochstream.readmodel.listing import RunQuery, count_sql, encode_cursor, page_sql
from epochstream.readmodel.stores import ReaderLink, store_for
from epochstream.readmodel.values import config_from_json, metrics_from_json, to_us
from schemas.rollups import Aggregate


class Versions(NamedTuple):
    """What an ETag is made of: the database generation and the run's change counters."""

    generation: str
    version: int
    epochs: int
    steps: int
    system: int
    status: str
    stale_after_us: int | None


@dataclass
class RunRecord:
    versions: Versions
    summary: dict[str, Any]
    config_text: str | None
    trend_state: dict[str, Any] | None

    @property
    def config(self) -> dict[str, Any]:
        return config_from_json(self.config_text)


class EpochRecord(NamedTuple):
    epoch: int
    seq: int
    ts_us: int
    samples: int | None
    metrics: dict[str, float]


class StepRecord(NamedTuple):
    step: int
    seq: int
    ts_us: int
    epoch: int | None
    metrics: dict[str, float]


class SystemRecord(NamedTuple):
    seq: int
    ts_us: int
    data: dict[str, Any]


@dataclass
class RunsPage:
    runs: list[tuple[dict[str, Any], Versions, dict[str, Any] | None]]  # summary, versions, fold state
    next_cursor: str | None
    total: int


def _document(text: str | None) -> dict[str, Any] | None:
    """A stored JSON document, or None when there is none or it cannot be read (a damaged row)."""
    try:
        value = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class _Handle(NamedTuple):
    generation: str
    link: ReaderLink


class ReadModelReader:
    def __init__(self, data_dir: Path, url: str | None = None):
        """`url`: Settings.read_model_url (empty: SQLite under `data_dir`)."""
        self.store = store_for(data_dir, url)
        self._local = threading.local()

    # -- connections -----------------------------------------------------------------------------------
    def _handle(self) -> _Handle | None:
        link = self._link()
        if not link.refresh() or link.generation is None:
            return None
        return _Handle(link.generation, link)

    def _link(self) -> ReaderLink:
        link: ReaderLink | None = getattr(self._local, "link", None)
        if link is None:
            link = self._local.link = self.store.reader_link()
        return link

    def _run(self, sql: str, params: tuple | list = ()) -> tuple[str | None, list[tuple]]:
        """(the generation the query ran on, its rows): the link follows the pointer first."""
        return self._link().run(sql, params)

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self._run(sql, params)[1]

    def generation(self) -> str | None:
        handle = self._handle()
        return handle.generation if handle else None

    def data_version(self) -> tuple[str | None, int]:
        """Changes whenever a writer commits (or a rebuild swaps): what long polls watch."""
        handle = self._handle()
        if handle is None:
            return None, 0
        return handle.generation, handle.link.data_version()

    def close(self) -> None:
        link = getattr(self._local, "link", None)
        if link is not None:
            link.close()
            self._local.link = None

    # -- runs ------------------------------------------------------------------------------------------
    def versions(self, run_id: str) -> Versions | None:
        generation, rows = self._run("SELECT version, epochs_version, steps_version, system_version, status, "
                                     "stale_after_us FROM runs WHERE run_id = ?", (run_id,))
        return Versions(generation, *rows[0]) if rows and generation is not None else None

    def run(self, run_id: str) -> RunRecord | None:
        generation, rows = self._run("SELECT version, epochs_version, steps_version, system_version, status, "
                                     "stale_after_us, summary, config, trend_state FROM runs WHERE run_id = ?",
                                     (run_id,))
        if not rows or generation is None:
            return None
        row = rows[0]
        summary = _document(row[6])
        if summary is None:
            raise ReadModelDamaged(run_id, "its summary")
        # An unreadable fold state reads as none: the verdict is then folded from the run's epochs.
        return RunRecord(Versions(generation, *row[:6]), summary, row[7], _document(row[8]))

    def _summary(self, text: str, run_id: str) -> dict[str, Any]:
        """The stored summary; for a damaged one, what the row's columns still say (one run's damage must
        not take the listing or SQL down for every run)."""
        summary = _document(text)
        if summary is not None:
            return summary
        rows = self._query("SELECT project, name, status, epochs FROM runs WHERE run_id = ?", (run_id,))
        project, name, status, epochs = rows[0] if rows else (None, None, "running", 0)
        return {"run_id": run_id, "project": project, "name": name, "status": status, "epochs": epochs}

    def list_runs(self, query: RunQuery, now: datetime) -> RunsPage:
        now_us = to_us(now)
        sql, params, _ = page_sql(query, now_us, self.store.dialect)
        generation, rows = self._run(sql, params)
        if generation is None:
            return RunsPage([], None, 0)
        more = len(rows) > query.limit
        rows = rows[:query.limit]
        page = [(self._summary(summary, run_id), Versions(generation, version, 0, 0, 0, "", stale),
                 _document(state)) for run_id, summary, version, stale, state, _ in rows]
        last = rows[-1] if more else None
        total_sql, total_params = count_sql(query, now_us, self.store.dialect)
        total = self._query(total_sql, total_params)[0][0]
        return RunsPage(page, encode_cursor(query.sort, last[5], last[0]) if last else None, total)

    def all_runs(self) -> list[tuple[dict[str, Any], str | None, dict[str, Any] | None]]:
        """(summary, config text, fold state) of every run: for SQL snapshots."""
        return [(self._summary(summary, run_id), config, _document(state))
                for run_id, summary, config, state in self._query("SELECT run_id, summary, config, trend_state "
                                                                  "FROM runs")]

    # -- series ----------------------------------------------------------------------------------------
    def epochs(self, run_id: str) -> list[EpochRecord]:
        return [EpochRecord(e, seq, ts, samples, metrics_from_json(m)) for e, seq, ts, samples, m in self._query(
            "SELECT epoch, seq, ts_us, samples, metrics FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,))]

    def first_step_ordinal(self, run_id: str, since: int | None) -> int | None:
        """The ordinal of the first step after `since` (0 for all), None when there is none."""
        if since is None:
            return 0
        rows = self._query("SELECT ord FROM steps WHERE run_id = ? AND step > ? ORDER BY step LIMIT 1",
                           (run_id, since))
        return rows[0][0] if rows else None

    def steps(self, run_id: str, since: int | None, limit: int) -> list[StepRecord]:
        """Up to `limit` steps after `since`, in step order."""
        return [StepRecord(s, seq, ts, epoch, metrics_from_json(m)) for s, seq, ts, epoch, m in self._query(
            "SELECT step, seq, ts_us, epoch, metrics FROM steps WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?",
            (run_id, -1 if since is None else since, limit))]

    def last_steps(self, run_id: str, count: int) -> list[StepRecord]:
        rows = self._query("SELECT step, seq, ts_us, epoch, metrics FROM steps WHERE run_id = ? ORDER BY step DESC "
                           "LIMIT ?", (run_id, count))
        return [StepRecord(s, seq, ts, epoch, metrics_from_json(m)) for s, seq, ts, epoch, m in reversed(rows)]

    def rollups(self, run_id: str, level: int, lo: int, hi: int) -> list[Aggregate]:
        return [orjson.loads(data) for (data,) in self._query(
            "SELECT data FROM step_rollups WHERE run_id = ? AND level = ? AND bucket >= ? AND bucket < ? "
            "ORDER BY bucket", (run_id, level, lo, hi))]

    def system(self, run_id: str, since: int | None) -> list[SystemRecord]:
        return [SystemRecord(seq, ts, orjson.loads(data)) for seq, ts, data in self._query(
            "SELECT seq, ts_us, data FROM system WHERE run_id = ? AND seq > ? ORDER BY seq, event_id",
            (run_id, -1 if since is None else since))]

    def problems(self) -> list[tuple[str, int, str]]:
        return [tuple(r) for r in self._query("SELECT run_id, at_us, reason FROM problems ORDER BY at_us")]

    def tracking(self) -> list[tuple[int, str, int, int]]:
        return [tuple(r) for r in self._query("SELECT partition, position, fence, batches FROM tracking "
                                              "ORDER BY partition")]

    def events_stored(self) -> int:
        """Events applied (each identity once); a full count, so meant for `/metrics` scrapes, not polls."""
        rows = self._query("SELECT count(*) FROM events")
        return int(rows[0][0]) if rows else 0
