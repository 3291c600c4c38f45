"""Helpers for the read-model fault tests: raw events on the real streams, a drain in a real process that
SIGKILLs itself at a named point, and what the API and SQL say about every run."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis

from epochstream.faults import CRASH_ENV
from epochstream.layout import DataLayout
from epochstream.readmodel import ReadModelWriter
from epochstream.settings import Settings
from query_api.encoding import strict_loads
from schemas.codec import encode
from schemas.keys import PAYLOAD_FIELD, Keys, partition_of
from tests.conftest import ROOT, settings_env
from workers.catalog import query
from workers.log_events import events_of
from workers.log_reader import read_log
from workers.log_schema import SCHEMAS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DRAIN = ("import sys; from workers.drain import drain_partition; "
         "drain_partition(sys.argv[1], sys.argv[2], int(sys.argv[3]))")


@dataclass
class RawRun:
    """Events of one run made by hand (any seq, any order), for what the producer would never send."""

    run_id: str
    seq: int = 0
    ts: datetime = field(default=T0)

    def event(self, model: type, *, seq: int | None = None, **body: Any) -> Any:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return model(event_id=f"{self.run_id}:{seq}", run_id=self.run_id, seq=seq,
                     ts=self.ts + timedelta(seconds=seq), **body)


def xadd(client: redis.Redis, settings: Settings, events: list[Any]) -> None:
    """XADD each event to its run's stream, in this order, as a producer would (minus its seq guard)."""
    keys = Keys(settings.namespace, settings.partitions)
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(keys.stream_for_run(event.run_id), {PAYLOAD_FIELD: encode(event)})
    pipe.execute()


def xadd_raw(client: redis.Redis, settings: Settings, run_id: str, payload: bytes) -> None:
    client.xadd(Keys(settings.namespace, settings.partitions).stream_for_run(run_id), {PAYLOAD_FIELD: payload})


def crash_drain(settings: Settings, partition: int, point: str) -> subprocess.CompletedProcess:
    """Drain `partition` in a real process that SIGKILLs itself at crash point `point`."""
    env = settings_env(settings)
    env[CRASH_ENV] = point
    env.pop("PYTEST_CURRENT_TEST", None)
    proc = subprocess.run([sys.executable, "-c", DRAIN, settings.model_dump_json(), settings.redis_url,
                           str(partition)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"the drain was not killed at {point}: {proc.stderr[-2000:]}"
    return proc


def dead_letters(client: redis.Redis, settings: Settings) -> int:
    return client.xlen(Keys(settings.namespace, settings.partitions).dlq)


def get_json(http: httpx.Client, path: str, **params: Any) -> Any:
    response = http.get(path, params=params)
    assert response.status_code == 200, f"GET {path} {params}: {response.status_code} {response.text[:500]}"
    return strict_loads(response.content)


def walk_runs(http: httpx.Client, page: int = 3, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of GET /runs (all pages, following `next_cursor`), and the `total` of the first page."""
    items: list[dict[str, Any]] = []
    body = get_json(http, "/runs", limit=page, **params)
    total = body["total"]
    while True:
        items.extend(body["runs"])
        if not body["next_cursor"]:
            return items, total
        body = get_json(http, "/runs", limit=page, cursor=body["next_cursor"], **params)


@dataclass(frozen=True)
class Seen:
    """What one reader says about a run: its status, counters and epoch numbers."""

    status: str
    epochs: int
    events: int
    epoch_numbers: tuple[int, ...]


def api_view(http: httpx.Client, expected_ids: set[str]) -> dict[str, Seen]:
    """What the API says about every run, checked for agreement between its routes on the way: `/runs`
    lists each run once, its `total` is the number listed, and `/runs/{id}` knows exactly those runs."""
    items, total = walk_runs(http)
    listed = [item["run_id"] for item in items]
    assert len(listed) == len(set(listed)), f"a run listed twice: {sorted(listed)}"
    assert total == len(listed), (total, len(listed))
    assert set(listed) == expected_ids, (sorted(set(listed) ^ expected_ids))
    out = {}
    for item in items:
        run_id = item["run_id"]
        run = get_json(http, f"/runs/{run_id}")
        epochs = get_json(http, f"/runs/{run_id}/epochs")
        numbers = tuple(e["epoch"] for e in epochs["epochs"])
        assert epochs["total"] == len(numbers) == run["epochs"] == item["epochs"], (run_id, epochs["total"], run)
        assert run["status"] == item["status"], run_id
        out[run_id] = Seen(run["status"], run["epochs"], run["events"], numbers)
    return out


def sql_view(settings: Settings) -> dict[str, Seen]:
    """What SQL says about every run (`epochstream sql`'s fresh snapshot), checked against its epochs view."""
    runs = query(settings, "SELECT run_id, status, epochs, events FROM runs").to_pylist()
    rows = query(settings, "SELECT run_id, list(epoch ORDER BY epoch) AS numbers, count(*) AS n, "
                           "count(DISTINCT event_id) AS ids FROM epochs GROUP BY run_id").to_pylist()
    epochs = {r["run_id"]: r for r in rows}
    out = {}
    for run in runs:
        row = epochs.get(run["run_id"], {"numbers": [], "n": 0, "ids": 0})
        assert row["n"] == row["ids"], run["run_id"]
        out[run["run_id"]] = Seen(run["status"], run["epochs"], run["events"], tuple(row["numbers"]))
    assert len(out) == len(runs), "a run twice in the runs view"
    return out


def replay_log_over_current(settings: Settings) -> tuple[list[str], list]:
    """Apply the whole log again to the read model in use, as catch-up would: every event must be known by
    its identity and digest, so nothing changes. Returns (runs changed, conflicts). Ends the test's drains:
    it takes the highest fence token."""
    writer = ReadModelWriter.open(settings.data_dir)
    changed, conflicts = [], []
    try:
        for event_type in SCHEMAS:
            for chunk in events_of(event_type, read_log(DataLayout(settings.data_dir), event_type)):
                by_partition: dict[int, list] = {}
                for entry in chunk:
                    by_partition.setdefault(partition_of(entry[1].run_id, settings.partitions), []).append(entry)
                for partition, entries in by_partition.items():
                    result = writer.apply(partition, entries, 2**62, entries[0][2])
                    changed += result.runs_changed
                    conflicts += result.conflicts
    finally:
        writer.close()
    return changed, conflicts
