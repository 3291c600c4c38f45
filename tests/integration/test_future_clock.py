"""A producer whose clock says the year 9999, against a real uvicorn and the DuckDB catalog: its run does not pin
itself to the top of `/runs` newest-first (it is ordered by when its events were ingested), it is flagged
(`clock_ahead_s`) in `/runs/{id}`, the listing and the `runs` view, and its events keep the ts they were sent
with. A rebuild from the log gives the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from schemas.epoch import EpochV2
from schemas.run_started import RunStartedV2
from tests.conftest import ApiServer
from tests.draining import drain_all
from tests.integration.helpers import RawRun, get_json, walk_runs, xadd
from tests.readmodel import content
from workers.catalog import query
from workers.rebuild import rebuild

FAR = datetime(9999, 12, 31, tzinfo=UTC)


def _ingest(settings, redis_client, run_id: str, start: datetime) -> None:
    run = RawRun(run_id, ts=start)
    xadd(redis_client, settings, [run.event(RunStartedV2, project="clock", name=run_id),
                                  *[run.event(EpochV2, epoch=e, metrics={"train/loss": 1.0 / (e + 1)})
                                    for e in range(3)]])
    drain_all(redis_client, settings)


def test_a_year_9999_run_is_ordered_by_ingestion_and_flagged(settings, redis_client):
    now = datetime.now(UTC)
    _ingest(settings, redis_client, "early", now - timedelta(hours=2))
    ingest_start = datetime.now(UTC)
    _ingest(settings, redis_client, "future", FAR)
    ingest_end = datetime.now(UTC)
    _ingest(settings, redis_client, "later", datetime.now(UTC) + timedelta(seconds=1))  # honest, after it

    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            def seen() -> tuple:
                items, _ = walk_runs(http, sort="newest")
                run = {k: v for k, v in get_json(http, "/runs/future").items()
                       if k not in ("version", "ingested_at", "ingest_lag_s")}  # what a rebuild renews
                ts = [e["ts"] for e in get_json(http, "/runs/future/epochs")["epochs"]]
                return [i["run_id"] for i in items], {i["run_id"]: i["clock_ahead_s"] for i in items}, run, ts

            order, flags, run, epoch_ts = seen()
            assert order == ["later", "future", "early"]  # not pinned to the top
            assert flags["early"] is None and flags["later"] is None
            assert flags["future"] > (FAR - ingest_end).total_seconds() - 1
            assert run["clock_ahead_s"] == flags["future"]
            for name in ("started_at", "last_seen"):  # clamped to when it was ingested
                assert ingest_start <= datetime.fromisoformat(run[name]) <= ingest_end, name
            assert {datetime.fromisoformat(t).year for t in epoch_ts} == {9999}  # its own ts, as sent
            assert get_json(http, "/runs", sort="oldest")["runs"][-1]["run_id"] == "later"

            sql = query(settings, "SELECT run_id, clock_ahead_s FROM runs").to_pylist()
            assert [r["run_id"] for r in sql] == order  # the view's own newest-first order
            assert {r["run_id"]: r["clock_ahead_s"] for r in sql} == flags
            assert {r["y"] for r in query(settings, "SELECT year(ts) AS y FROM epochs WHERE run_id = 'future'")
                    .to_pylist()} == {9999}

            before = content(settings)
            rebuild(settings)
            assert content(settings) == before
            assert seen() == (order, flags, run, epoch_ts)
    finally:
        api.stop()
