"""A truncated or corrupt log segment on real files: it is quarantined wherever it is met first, SQL keeps
answering for everything else, `rebuild` and `compact` complete, and its events come back from the broker
while it still holds them; when it does not, the loss is reported (exactly where the file still names its
events), never silent."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import duckdb
import pyarrow.parquet as pq
import pytest

from epochstream.layout import DataLayout
from epochstream.readmodel.location import Location
from schemas.epoch import EpochV2
from schemas.keys import Keys, partition_of
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from tests.conftest import ROOT, settings_env
from tests.draining import drain_all
from tests.integration.helpers import RawRun, Seen, sql_view, xadd
from tests.readmodel import content
from workers.catalog import ensure_catalog, query
from workers.compaction import compact
from workers.log_reader import count_by_id, segments
from workers.quarantine import quarantined
from workers.rebuild import rebuild

RUNS, EPOCHS = 4, 12
CLI = "from epochstream.cli import main; main()"


def _ingest(settings, redis_client):
    settings = settings.model_copy(update={"drain_batch": 7})  # many small segments
    runs = [RawRun(f"q{i}") for i in range(RUNS)]
    xadd(redis_client, settings, [run.event(RunStartedV2, project="quarantine") for run in runs])
    xadd(redis_client, settings, [run.event(EpochV2, epoch=e, metrics={"train/loss": 1.0 / (e + 1)})
                                  for e in range(EPOCHS) for run in runs])
    xadd(redis_client, settings, [run.event(RunFinishedV2, status="completed") for run in runs])
    drain_all(redis_client, settings)
    ensure_catalog(settings)  # as `epochstream worker` does at start
    return settings


def _victims(settings, count: int = 1) -> list:
    """The epoch segments holding the most rows, all of one partition."""
    layout = DataLayout(settings.data_dir)
    files = sorted(segments(layout, "epoch"), key=lambda p: -pq.read_metadata(p).num_rows)
    partition = int(files[0].name.split("-p")[1].split("-")[0])
    return [f for f in files if f"-p{partition}-" in f.name][:count]


def _truncate(path) -> int:
    rows = pq.read_metadata(path).num_rows
    os.truncate(path, path.stat().st_size // 2)
    return rows


def _epochstream(settings, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", CLI, *args], env=settings_env(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _raw_session_count(settings) -> int:
    """What an analyst's own DuckDB session (no `epochstream sql`) answers."""
    con = duckdb.connect(str(DataLayout(settings.data_dir).catalog), read_only=True)
    try:
        con.execute(f"SET file_search_path = '{settings.data_dir}'")
        return con.execute("SELECT count(*) FROM epochs").fetchone()[0]
    finally:
        con.close()


EXPECTED = {f"q{i}": Seen("completed", EPOCHS, EPOCHS + 2, tuple(range(EPOCHS))) for i in range(RUNS)}


def test_a_truncated_segment_is_quarantined_sql_rebuild_and_compact_go_on_and_its_events_come_back(
        settings, redis_client):
    settings = _ingest(settings, redis_client)
    incremental = content(settings)
    (victim,) = _victims(settings)
    rows = _truncate(victim)
    with pytest.raises(duckdb.Error, match="magic bytes|Invalid|corrupt"):
        _raw_session_count(settings)  # the defect: one bad file fails the whole view, for everyone

    answer = _epochstream(settings, "sql", "--data-dir", str(settings.data_dir), "SELECT count(*) AS n FROM epochs")
    assert answer.returncode == 0 and str(RUNS * EPOCHS) in answer.stdout, answer.stdout + answer.stderr
    assert _raw_session_count(settings) == RUNS * EPOCHS  # the file is aside, its events back in the log

    (item,) = quarantined(DataLayout(settings.data_dir))
    assert item.original == f"log/epoch/{victim.name}" and not victim.exists() and item.path.exists()
    assert "magic bytes" in item.reason and item.found_by == "catalog"
    assert (item.recovery, item.recovered_events, item.lost_events) == ("recovered", rows, 0)
    view = query(settings, "SELECT file, reason, recovery, recovered_events, lost_events FROM quarantine").to_pylist()
    assert view == [{"file": item.original, "reason": item.reason, "recovery": "recovered",
                     "recovered_events": rows, "lost_events": 0}]
    listing = _epochstream(settings, "quarantine", "--data-dir", str(settings.data_dir))
    assert listing.returncode == 0 and victim.name in listing.stdout.replace("\n", "")

    for args in (["rebuild"], ["compact", "--min-age", "0"]):
        proc = _epochstream(settings, *args, "--data-dir", str(settings.data_dir))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "not all recovered" not in proc.stdout
    assert content(settings) == incremental  # the rebuild replayed the recovered events
    assert sql_view(settings) == EXPECTED
    assert len(count_by_id(DataLayout(settings.data_dir), "epoch")) == RUNS * EPOCHS


@pytest.mark.parametrize("step", ["compaction", "rebuild", "catch-up"])
def test_each_maintenance_step_quarantines_what_it_cannot_read_and_completes(settings, redis_client, step):
    settings = _ingest(settings, redis_client)
    incremental = content(settings)
    (victim,) = _victims(settings)
    rows = _truncate(victim)
    if step == "compaction":
        assert sum(r.files_in for r in compact(settings)) > 0
    elif step == "rebuild":
        assert rebuild(settings) == RUNS
    else:  # catch-up opens only segments ahead of the tracking record (their names say): as a restored copy
        _, path = Location.of(settings.data_dir).current()
        with sqlite3.connect(path) as con:
            con.execute("UPDATE tracking SET position = '0-0'")
        drain_all(redis_client, settings)
    (item,) = quarantined(DataLayout(settings.data_dir))
    assert item.found_by == step and item.original == f"log/epoch/{victim.name}"
    if step == "catch-up":  # a drain has no time to spare for the broker: the next maintenance step recovers
        assert item.recovery == "pending"
        compact(settings)
        (item,) = quarantined(DataLayout(settings.data_dir))
    assert (item.recovery, item.recovered_events, item.lost_events) == ("recovered", rows, 0)
    assert content(settings) == incremental
    assert sql_view(settings) == EXPECTED


def _corrupt_a_data_page(path) -> tuple[int, set[str]]:
    """Damage the metrics column's data, leaving the footer and the event_id column readable."""
    meta = pq.read_metadata(path)
    ids = set(pq.read_table(path, columns=["event_id"]).column("event_id").to_pylist())
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(next(i for i, n in enumerate(names) if n.startswith("metrics")))
    with open(path, "r+b") as fh:
        fh.seek(chunk.data_page_offset + 8)
        fh.write(bytes(b ^ 0xFF for b in fh.read(max(16, chunk.total_compressed_size - 16))))
    later = time.time() + 300  # as if the damage came minutes after the drain wrote it
    os.utime(path, (later, later))
    return meta.num_rows, ids


def test_events_the_broker_no_longer_holds_are_reported_lost_exactly_where_the_file_still_names_them(
        settings, redis_client):
    settings = _ingest(settings, redis_client)
    truncated, paged = _victims(settings, 2)
    partition = int(truncated.name.split("-p")[1].split("-")[0])
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream(partition)
    newest = redis_client.xrevrange(stream, count=1)[0][0].decode()
    ms, seq = newest.split("-")
    # what the scheduler does once everything is drained
    redis_client.xtrim(stream, minid=f"{ms}-{int(seq) + 1}", approximate=False)
    truncated_rows = _truncate(truncated)
    paged_rows, paged_ids = _corrupt_a_data_page(paged)
    total = query(settings, "SELECT count(*) AS n FROM epochs").to_pylist()[0]["n"]  # `sql` quarantines both
    assert total == RUNS * EPOCHS - truncated_rows - paged_rows  # everything else still answers

    items = {q.name: q for q in quarantined(DataLayout(settings.data_dir))}
    assert set(items) == {truncated.name, paged.name}
    lost = items[truncated.name]
    assert (lost.recovery, lost.recovered_events, lost.lost_events, lost.events) == ("lost", 0, None, None)
    assert "unknown" in lost.recovery_note and "trimmed" in lost.recovery_note
    exact = items[paged.name]
    assert (exact.recovery, exact.recovered_events, exact.lost_events, exact.events) == ("lost", 0, paged_rows,
                                                                                         paged_rows)
    assert all(event_id in exact.recovery_note for event_id in sorted(paged_ids)[:3])
    short = {f"q{i}" for i in range(RUNS) if partition_of(f"q{i}", settings.partitions) == partition}
    per_run = {row["run_id"]: row["n"] for row in
               query(settings, "SELECT run_id, count(*) AS n FROM epochs GROUP BY run_id").to_pylist()}
    assert {run for run, n in per_run.items() if n < EPOCHS} == short  # the others are whole

    for args in (["rebuild"], ["compact", "--min-age", "0"]):
        proc = _epochstream(settings, *args, "--data-dir", str(settings.data_dir))
        assert proc.returncode == 0 and "2 quarantined segment(s) whose events are not all recovered" in proc.stdout, \
            proc.stdout + proc.stderr
    view = query(settings, "SELECT file, recovery, lost_events FROM quarantine ORDER BY file").to_pylist()
    assert sorted((row["file"], row["lost_events"]) for row in view) == sorted(
        [(f"log/epoch/{truncated.name}", None), (f"log/epoch/{paged.name}", paged_rows)])
