"""Maintenance is safe at any time: the maintenance lock, leftovers of crashed jobs, compaction's grace for
queries that already listed a part, and a catalog that answers from wherever the data directory is."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest
from typer.testing import CliRunner

from epochstream.cli import app as cli_app
from epochstream.faults import CRASH_ENV
from epochstream.layout import DataLayout
from epochstream.readmodel.location import Location
from tests.conftest import READ_MODELS, ROOT, settings_env, with_read_model
from tests.draining import drain_all
from tests.readmodel import content, unfinished
from tests.workers.helpers import publish_runs
from tests.workers.test_rebuild_compact import VIEWS
from workers.catalog import open_catalog, query
from workers.compaction import compact
from workers.leftovers import clean_leftovers
from workers.log_reader import count_by_id, segments
from workers.maintenance_lock import MaintenanceBusy, maintenance_lock
from workers.rebuild import rebuild


def answers(settings) -> dict[str, list]:
    """Every view's rows; of the snapshot views, what does not depend on which copy of an event was applied
    last (`version`, `ingested_at` differ between a rebuild and the incremental read model)."""
    out = {}
    for name, sql in VIEWS.items():
        rows = query(settings, sql).to_pylist()
        if name in ("runs", "trends"):
            rows = [{k: v for k, v in row.items() if k not in ("version", "ingested_at")} for row in rows]
        out[name] = rows
    return out


def _ingest(settings, runs: int = 3, epochs: int = 12):
    settings = settings.model_copy(update={"drain_batch": 5})
    publish_runs(settings, runs=runs, epochs=epochs, system_every=3)
    drain_all(_client(settings), settings)
    return settings


def _client(settings):
    import redis

    return redis.Redis.from_url(settings.redis_url)


def test_a_second_compaction_or_rebuild_waits_or_says_who_holds_the_lock(settings, redis_client):
    settings = _ingest(settings)
    layout = DataLayout(settings.data_dir)
    with maintenance_lock(layout, "compact"):
        with pytest.raises(MaintenanceBusy, match=r"`compact` \(pid \d+, since .*\) is maintaining"):
            compact(settings)
        with pytest.raises(MaintenanceBusy, match="retry when it is done|Retry when it is done"):
            rebuild(settings)
        result = CliRunner().invoke(cli_app, ["compact", "--data-dir", str(settings.data_dir), "--min-age", "0"],
                                    env=settings_env(settings))
        assert result.exit_code == 1 and "error:" in result.output and "is maintaining" in result.output
        assert "Traceback" not in result.output
        # one that waits gets the lock as soon as the holder is done
        done: list[object] = []
        waiter = threading.Thread(target=lambda: done.append(compact(settings, wait_s=30)))
        waiter.start()
        time.sleep(0.5)
        assert not done  # still waiting
    waiter.join(timeout=60)
    assert done and sum(r.files_in for r in done[0]) > 0


def test_leftovers_of_crashed_jobs_are_removed_by_the_next_one_and_a_young_drain_tmp_is_kept(settings, redis_client):
    settings = _ingest(settings)
    layout = DataLayout(settings.data_dir)
    before = answers(settings)
    readmodel = Location.of(settings.data_dir).directory
    epoch_dir = layout.log_dir("epoch")
    leftovers = [readmodel / "building-20250101T000000-deadbeef.sqlite", readmodel / "projections.rebuild-x",
                 epoch_dir / ".seg-20250101T000000000000Z-p0-aa-compacted-bb.parquet.0123456789ab.tmp"]
    drain_tmp = epoch_dir / ".seg-20250101T000000000000Z-p1-cc.parquet.0123456789ab.tmp"
    for path in [*leftovers, drain_tmp]:
        path.write_bytes(b"half a file")
    assert set(clean_leftovers(layout)) == set(leftovers)
    assert drain_tmp.exists()  # a drain's temporary file may be one being written right now
    assert clean_leftovers(layout, stale_s=0.0) == [drain_tmp]  # an hour later (by default) it is a leftover
    compact(settings)
    assert answers(settings) == before


@pytest.mark.parametrize("point", ["rebuild_before_swap", "compaction_after_merge"])
@pytest.mark.parametrize("read_model", READ_MODELS)
def test_a_maintenance_job_killed_midway_changes_no_answer_and_the_next_one_cleans_up(settings, redis_client, point,
                                                                                      read_model, request):
    settings = with_read_model(request, settings, read_model)
    settings = _ingest(settings)
    layout = DataLayout(settings.data_dir)
    incremental = content(settings)
    before = answers(settings)
    env = {**settings_env(settings), CRASH_ENV: point}
    env.pop("PYTEST_CURRENT_TEST", None)
    command = "rebuild" if point.startswith("rebuild") else "compact"
    proc = subprocess.run([sys.executable, "-c", "from epochstream.cli import main; main()", command,
                           "--min-age", "0"] if command == "compact" else
                          [sys.executable, "-c", "from epochstream.cli import main; main()", command],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    if command == "rebuild":
        assert unfinished(settings)  # what a kill leaves
    assert answers(settings) == before
    assert content(settings) == incremental
    # the next job of either kind takes the lock (the kernel released it with the dead process) and cleans up
    compact(settings, keep_s=0)
    assert not unfinished(settings)
    assert set(count_by_id(layout, "epoch").values()) == {1}
    rebuild(settings)
    assert content(settings) == incremental
    assert answers(settings) == before


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    import pyarrow as pa

    from epochstream.layout import atomic_write_parquet

    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises for a codec it does not know
        atomic_write_parquet(pa.table({"a": [1]}), tmp_path / "x.parquet", compression="no-such-codec")
    assert list(tmp_path.iterdir()) == []


def test_files_a_query_listed_before_a_compaction_can_still_be_opened_after_it(settings, redis_client):
    """A query lists a view's files when it is planned and opens them later; compaction must not delete a
    part in between. With the grace period (the default) every listed file still opens; without it they do not."""
    settings = _ingest(settings)
    con = open_catalog(settings)
    listed = [row[0] for row in con.execute("SELECT file FROM glob('log/epoch/seg-*.parquet')").fetchall()]
    assert len(listed) > 3
    count = "SELECT count(*) FROM read_parquet($files)"
    rows = con.execute(count, {"files": listed}).fetchone()[0]
    compact(settings)
    assert con.execute(count, {"files": listed}).fetchone()[0] == rows  # every one of them still there
    compact(settings, keep_s=0)  # the grace period over: now they go
    with pytest.raises(duckdb.IOException):
        con.execute(count, {"files": listed}).fetchone()
    con.close()


def _readme_queries() -> list[str]:
    text = (ROOT / "README.md").read_text()
    queries = [block.strip() for block in re.findall(r"```sql\n(.*?)```", text, re.S)
               if re.match(r"-- \d\.", block)]
    assert len(queries) == 5, queries
    return queries


def _rows(settings, sql: str) -> list:
    return sorted(query(settings, sql).to_pylist(), key=repr)  # ties (all-NULL sort keys) in any order


def test_a_copied_data_directory_answers_the_readme_queries_from_its_new_path(settings, redis_client, tmp_path):
    settings = _ingest(settings)
    queries = _readme_queries()
    before = [_rows(settings, q) for q in queries]
    assert any(before)  # the queries do return something here
    copy = tmp_path / "elsewhere" / "mounted-data"
    shutil.copytree(settings.data_dir, copy)
    shutil.move(settings.data_dir, tmp_path / "gone")  # nothing may still point at the old path
    moved = settings.model_copy(update={"data_dir": copy})
    assert [_rows(moved, q) for q in queries] == before
    for q, rows in zip(queries, before, strict=True):  # and through the command, from another working directory
        proc = subprocess.run([sys.executable, "-c", "from epochstream.cli import main; main()", "sql",
                               "--data-dir", str(copy), "--", q], env=settings_env(moved), cwd="/",
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and f"{len(rows)} rows" in proc.stdout, proc.stdout + proc.stderr
    # an analyst's own DuckDB session started in the data directory needs nothing else
    proc = subprocess.run([sys.executable, "-c", "import duckdb; con = duckdb.connect('epochstream.duckdb', "
                           "read_only=True); print(con.execute('SELECT count(*) FROM epochs').fetchone()[0])"],
                          cwd=copy, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == str(query(moved, "SELECT count(*) AS n FROM epochs").to_pylist()[0]["n"])
    assert segments(DataLayout(copy), "epoch")
