"""The read model under faults, on real parts: drains SIGKILLed at named points, damaged rows, a garbage
database file, a database restored from an older copy (odd input: `test_read_model_input.py`).

Afterwards the API (a real uvicorn) and SQL agree with each other and with what was published: every event
exactly once, `/runs` lists exactly the runs `/runs/{id}` knows, and the read model equals `rebuild(log)`.
"""

from __future__ import annotations

import shutil
import sqlite3

import httpx
import pytest
from typer.testing import CliRunner

from epochstream.cli import app as cli_app
from epochstream.readmodel.location import Location
from epochstream.readmodel.reader import ReadModelReader
from producer import Publisher, start_run
from schemas.epoch import EpochV2
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from schemas.step import StepV1
from schemas.system import SystemV2
from tests.conftest import ApiServer, settings_env
from tests.draining import drain_all
from tests.integration.helpers import (
    RawRun,
    Seen,
    api_view,
    crash_drain,
    dead_letters,
    get_json,
    replay_log_over_current,
    sql_view,
    walk_runs,
    xadd,
)
from tests.readmodel import content
from workers.catalog import query
from workers.compaction import compact
from workers.rebuild import rebuild

EPOCHS = 10  # per run; each run also sends run_started, two system samples and run_finished


def _tracking(settings) -> tuple[str, int]:
    reader = ReadModelReader(settings.data_dir)
    try:
        rows = reader.tracking()
        return (rows[0][1], rows[0][3]) if rows else ("0-0", 0)
    finally:
        reader.close()


def _two_phase_round(settings, redis_client, prefix: str, point: str) -> set[str]:
    """Four runs with half their epochs drained cleanly; then their second half, their run_finished and two
    new runs, whose drain is SIGKILLed at `point`; then a healthy drain. Returns the run ids."""
    publisher = Publisher(settings)
    old = [start_run(project="crash", name=f"{prefix}-old{i}", run_id=f"{prefix}-old{i}", publisher=publisher)
           for i in range(4)]
    for run in old:
        for epoch in range(EPOCHS // 2):
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1), "val/loss": 2.0 / (epoch + 1)}, samples=8)
            if epoch == 0:
                run.log_system(cpu_percent=1.0, rss_mb=10.0)
    assert publisher.flush(30)
    drain_all(redis_client, settings)
    before = _tracking(settings)

    for run in old:
        for epoch in range(EPOCHS // 2, EPOCHS):
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1), "val/loss": 2.0 / (epoch + 1)}, samples=8)
            if epoch == EPOCHS // 2:
                run.log_system(cpu_percent=2.0, rss_mb=20.0)
        run.finish()
    for i in range(2):
        with start_run(project="crash", name=f"{prefix}-new{i}", run_id=f"{prefix}-new{i}",
                       publisher=publisher) as run:
            for epoch in range(EPOCHS):
                run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=8)
                if epoch in (0, EPOCHS // 2):
                    run.log_system(cpu_percent=3.0, rss_mb=30.0)
    assert publisher.flush(30)
    publisher.close()

    crash_drain(settings, 0, point)
    after = _tracking(settings)
    if point == "before_ack":  # the first batch of the second phase committed, then the process died
        assert after[1] == before[1] + 1 and after[0] > before[0]
    else:  # nothing of it committed: the tracking record did not move
        assert after == before, point
    stored, dead = drain_all(redis_client, settings)
    assert dead == 0 and stored > 0
    return {r.run_id for r in old} | {f"{prefix}-new{i}" for i in range(2)}


def test_drains_sigkilled_at_each_point_leave_every_event_once_in_the_api_and_sql(settings, redis_client):
    """D1: after a crash mid-projection and the redelivery, `/runs`, `/runs/{id}`, `/epochs` and SQL all show
    every run, each event once (the old projections listed 2,181 of 3,000 runs)."""
    settings = settings.model_copy(update={"partitions": 1, "drain_batch": 17, "claim_idle_ms": 0})
    api = ApiServer(settings)
    try:
        expected: dict[str, Seen] = {}
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            for point in ("after_write", "before_commit", "before_ack"):
                ids = _two_phase_round(settings, redis_client, point.replace("_", ""), point)
                expected.update({run_id: Seen("completed", EPOCHS, EPOCHS + 4, tuple(range(EPOCHS)))
                                 for run_id in ids})
                assert api_view(http, set(expected)) == expected, point
                assert sql_view(settings) == expected, point
    finally:
        api.stop()
    assert dead_letters(redis_client, settings) == 0
    incremental = content(settings)
    assert replay_log_over_current(settings) == ([], [])  # the log's copies (two of some) change nothing
    assert content(settings) == incremental
    rebuild(settings)
    assert content(settings) == incremental


# -- D3: one damaged run never blocks the others -----------------------------------------------------------
def _victim_and_bystanders(victim: RawRun, others: list[RawRun], first: int, last: int, system: bool) -> list:
    """Epochs first..last-1 of each run, with four steps per epoch and (`system`) a system sample carrying
    the run's drop report per epoch; run_started on the first call."""
    events = []
    for run in [victim, *others]:
        if first == 0:
            events.append(run.event(RunStartedV2, project="d3", name=run.run_id, tags=["t"], config={"lr": 0.1}))
        for epoch in range(first, last):
            events.append(run.event(EpochV2, epoch=epoch, metrics={"train/loss": 1.0 / (epoch + 1),
                                                                   "val/loss": 1.0 + abs(epoch - 4) / 10}))
            events.extend(run.event(StepV1, step=epoch * 4 + k, epoch=epoch, metrics={"train/loss": 0.5 + k})
                          for k in range(4))
            if system:
                events.append(run.event(SystemV2, cpu_percent=float(epoch),
                                        drops={"counts": {"not_a_number": epoch}, "examples": [f"e{epoch}"]}))
    return events


GARBAGE = {"trend_state": "{not json", "step_tail": '["a list", "not a tail"]', "summary": '{"run_id": 1'}
REPORT = {"counts": {"not_a_number": 5}, "examples": ["e5"]}  # the cumulative drop report of phase one


@pytest.mark.parametrize("column", sorted(GARBAGE))
def test_a_damaged_run_row_blocks_no_other_run_and_recovers(settings, redis_client, column):
    """D3: garbage in one run's stored row (through SQL on the database file); its next events and other
    runs' events in the same batches all apply, the damaged run comes back equal to a rebuild, and nothing
    is dead-lettered (the old projections dead-lettered 19 of 19 entries of the partition)."""
    settings = settings.model_copy(update={"partitions": 1, "drain_batch": 50})
    victim, others = RawRun("victim"), [RawRun(f"other{i}") for i in range(3)]
    runs = [victim, *others]
    xadd(redis_client, settings, _victim_and_bystanders(victim, others, 0, 6, system=True))
    drain_all(redis_client, settings)
    con = sqlite3.connect(Location.of(settings.data_dir).current()[1])
    assert con.execute(f"UPDATE runs SET {column} = ? WHERE run_id = 'victim'", (GARBAGE[column],)).rowcount == 1
    con.commit()
    con.close()

    xadd(redis_client, settings, _victim_and_bystanders(victim, others, 6, 12, system=False))
    stored, dead = drain_all(redis_client, settings)
    assert (stored, dead) == (4 * 6 * 5, 0)
    reader = ReadModelReader(settings.data_dir)
    try:
        assert reader.problems() == []
        for run in runs:
            assert [e.epoch for e in reader.epochs(run.run_id)] == list(range(12)), run.run_id
            assert [s.step for s in reader.steps(run.run_id, None, 100)] == list(range(48)), run.run_id
            summary = reader.run(run.run_id).summary
            assert (summary["epochs"], summary["steps"], summary["system_samples"], summary["events"],
                    summary["best_epoch"], summary["tags"]) == (12, 48, 6, 67, 4, ["t"]), run.run_id
            if column != "summary":  # a garbage summary takes its drop report along until the next report
                assert (summary["drops"], summary["dropped"]) == (REPORT, 5), run.run_id
    finally:
        reader.close()

    # run_finished carries the cumulative drop report, as every heartbeat does
    xadd(redis_client, settings, [run.event(RunFinishedV2, status="completed", drops=REPORT) for run in runs])
    assert drain_all(redis_client, settings) == (4, 0)
    assert dead_letters(redis_client, settings) == 0
    incremental = content(settings)
    assert incremental["runs"]["victim"]["summary"]["status"] == "completed"
    rebuild(settings)
    assert content(settings) == incremental


def test_a_damaged_row_of_a_finished_run_breaks_no_listing_and_no_sql(settings, redis_client):
    """D3, the read side: a finished run gets no more batches to repair its row, so until a rebuild the
    listing, the other runs and SQL must keep working around it; the run itself says what is wrong."""
    settings = settings.model_copy(update={"partitions": 1})
    runs = [RawRun(f"fin{i}") for i in range(4)]
    events = []
    for run in runs:
        events.append(run.event(RunStartedV2, project="d3", name=run.run_id))
        events.extend(run.event(EpochV2, epoch=e, metrics={"val/loss": 1.0 / (e + 1)}) for e in range(5))
        events.append(run.event(RunFinishedV2, status="completed"))
    xadd(redis_client, settings, events)
    drain_all(redis_client, settings)
    con = sqlite3.connect(Location.of(settings.data_dir).current()[1])
    con.execute("UPDATE runs SET summary = '{oops' WHERE run_id = 'fin0'")
    con.execute("UPDATE runs SET trend_state = '[[[' WHERE run_id = 'fin1'")
    con.commit()
    con.close()

    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            items, total = walk_runs(http)
            assert total == 4 and sorted(i["run_id"] for i in items) == [r.run_id for r in runs]
            assert {i["run_id"]: i["status"] for i in items} == {r.run_id: "completed" for r in runs}
            healthy = get_json(http, "/runs/fin2")
            assert healthy["best_epoch"] == 4 and get_json(http, "/runs/fin3")["best_epoch"] == 4
            unfolded = get_json(http, "/runs/fin1")  # its verdict is folded again from its epochs
            assert (unfolded["best_epoch"], unfolded["trends"]) == (4, healthy["trends"])
            listed = {i["run_id"]: i for i in items}
            assert listed["fin1"]["recommendation"] == listed["fin2"]["recommendation"] is not None
            for path in ("/runs/fin0", "/runs/fin0/epochs"):
                damaged = http.get(path)
                assert damaged.status_code == 503 and "rebuild" in damaged.json()["detail"], damaged.text
            counted = query(settings, "SELECT count(*) AS n, count(*) FILTER (status = 'completed') AS done "
                                      "FROM runs").to_pylist()
            assert counted == [{"n": 4, "done": 4}]
            rebuild(settings)
            for run in runs:
                assert get_json(http, f"/runs/{run.run_id}")["best_epoch"] == 4
    finally:
        api.stop()


# -- D4: rebuild from the log alone, whatever state the read model is in -----------------------------------
def _some_runs(prefix: str, count: int, epochs: int) -> list:
    events = []
    for i in range(count):
        run = RawRun(f"{prefix}{i}")
        events.append(run.event(RunStartedV2, project="d4", name=run.run_id, config={"i": i}))
        for epoch in range(epochs):
            events.append(run.event(EpochV2, epoch=epoch, metrics={"train/loss": 1.0 / (epoch + 1 + i)}))
            events.append(run.event(StepV1, step=epoch, metrics={"train/loss": 2.0 / (epoch + 1)}))
        events.append(run.event(SystemV2, cpu_percent=5.0))
    return events


def test_cli_rebuild_replaces_a_garbage_database_and_the_api_follows(settings, redis_client):
    """D4: the database file and its -wal overwritten with garbage (the old rebuild read the old summaries
    and aborted): `epochstream rebuild` makes a new one from the log, the running API serves every run with
    its whole history again, and drains go on into the new database."""
    settings = settings.model_copy(update={"partitions": 2})
    xadd(redis_client, settings, _some_runs("g", 4, 12))
    drain_all(redis_client, settings)
    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            ids = {f"g{i}" for i in range(4)}
            before = api_view(http, ids)
            assert {seen.epochs for seen in before.values()} == {12}
            database = Location.of(settings.data_dir).current()[1]
            for path in (database, database.with_name(database.name + "-wal")):
                assert path.exists()
                path.write_bytes(b"\xde\xad garbage " * 4096)
            assert http.get("/runs/g0").status_code >= 500  # the API reads garbage now

            result = CliRunner().invoke(cli_app, ["rebuild", "--wait", "10"], env=settings_env(settings))
            assert result.exit_code == 0, result.output
            assert "4 run(s)" in result.output
            assert api_view(http, ids) == before
            for run_id in ids:
                steps = get_json(http, f"/runs/{run_id}/steps")["steps"]
                assert [s["step"] for s in steps] == list(range(12)), run_id

            xadd(redis_client, settings, _some_runs("h", 2, 3))
            drain_all(redis_client, settings)
            assert set(api_view(http, ids | {"h0", "h1"})) == ids | {"h0", "h1"}
    finally:
        api.stop()


# -- catch-up: a read model behind the log ---------------------------------------------------------------
def test_a_read_model_restored_from_an_older_copy_catches_up_from_the_log(settings, redis_client):
    """The database put back from a copy taken a few batches ago (its -wal and -shm gone with the newer
    one): the next drain finds the log's segments above its tracking record and applies them before
    reading anything new, so every event is in the API once, and nothing is doubled."""
    settings = settings.model_copy(update={"partitions": 1, "drain_batch": 13})
    runs = [RawRun(f"c{i}") for i in range(3)]

    def epochs(first: int, last: int) -> list:
        return [run.event(EpochV2, epoch=e, metrics={"train/loss": 1.0 / (e + 1)}) for run in runs
                for e in range(first, last)]

    xadd(redis_client, settings, [run.event(RunStartedV2, project="cu") for run in runs] + epochs(0, 5))
    drain_all(redis_client, settings)
    database = Location.of(settings.data_dir).current()[1]
    copy = database.with_name("older-copy")
    source, target = sqlite3.connect(database), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    old_position = _tracking(settings)

    late = RawRun("c3")
    xadd(redis_client, settings, epochs(5, 10) + [late.event(RunStartedV2, project="cu"),
                                                  late.event(EpochV2, epoch=0, metrics={"train/loss": 1.0})])
    xadd(redis_client, settings, [run.event(RunFinishedV2, status="completed") for run in [*runs, late]])
    drain_all(redis_client, settings)
    newest = _tracking(settings)
    assert newest[1] >= old_position[1] + 2  # several batches went by
    incremental = content(settings)

    for extra in ("-wal", "-shm"):
        database.with_name(database.name + extra).unlink(missing_ok=True)
    shutil.move(copy, database)
    assert _tracking(settings) == old_position
    assert drain_all(redis_client, settings) == (0, 0)  # nothing new in the stream: all came from the log
    assert _tracking(settings)[0] == newest[0]
    assert content(settings) == incremental
    expected = {**{run.run_id: Seen("completed", 10, 12, tuple(range(10))) for run in runs},
                "c3": Seen("completed", 1, 3, (0,))}
    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            assert api_view(http, set(expected)) == expected
    finally:
        api.stop()
    assert sql_view(settings) == expected
    rebuild(settings)
    assert content(settings) == incremental


def test_a_restored_copy_catches_up_even_when_the_log_was_compacted_since(settings, redis_client):
    """As above, but `epochstream compact` ran between the copy and its restore: the epochs logged since the
    copy sit in a compacted segment, stamped with its parts' partition and newest stream id, which catch-up
    reads like a drained one."""
    settings = settings.model_copy(update={"partitions": 1, "drain_batch": 7})
    runs = [RawRun(f"k{i}") for i in range(2)]
    xadd(redis_client, settings, [run.event(RunStartedV2, project="cu") for run in runs])
    drain_all(redis_client, settings)
    database = Location.of(settings.data_dir).current()[1]
    source, target = sqlite3.connect(database), sqlite3.connect(database.with_name("older-copy"))
    source.backup(target)
    source.close()
    target.close()
    xadd(redis_client, settings, [run.event(EpochV2, epoch=e, metrics={"train/loss": 1.0}) for run in runs
                                  for e in range(10)])
    drain_all(redis_client, settings)
    incremental = content(settings)
    assert sum(r.files_in for r in compact(settings)) > 2  # what `epochstream compact` does a minute later

    for extra in ("-wal", "-shm"):
        database.with_name(database.name + extra).unlink(missing_ok=True)
    shutil.move(database.with_name("older-copy"), database)
    drain_all(redis_client, settings)
    assert content(settings) == incremental
