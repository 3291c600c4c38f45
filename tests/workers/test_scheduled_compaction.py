"""The scheduler queues a compaction of the log every `compact_every_s`; a worker runs it beside the drains."""

from __future__ import annotations

import subprocess
import sys
import time

from epochstream.layout import DataLayout
from tests.conftest import ROOT, settings_env
from tests.processes import stop_processes
from tests.readmodel import summary as stored_summary
from tests.workers.helpers import publish_runs
from workers.catalog import query
from workers.log_reader import count_by_id, segments
from workers.scheduling import drain_queue, enqueue_compaction

CLI = "from epochstream.cli import main; main()"


def test_one_compaction_is_queued_per_period_however_many_schedulers(settings, redis_client):
    settings = settings.model_copy(update={"compact_every_s": 60.0})
    assert enqueue_compaction(redis_client, settings) is not None
    assert enqueue_compaction(redis_client, settings) is None  # another scheduler, same period
    assert drain_queue(redis_client, settings).count == 1
    assert enqueue_compaction(redis_client, settings.model_copy(update={"compact_every_s": 0.0})) is None


def _drained(settings, batch: int) -> bool:
    summaries = [stored_summary(settings, f"b{batch}-{r}") for r in range(3)]
    return all(s is not None and s["epochs"] == 5 for s in summaries)


def _wait_until(condition, worker, tmp_path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
        time.sleep(0.2)


def test_a_worker_compacts_the_log_on_schedule_while_it_drains(settings, redis_client, tmp_path):
    settings = settings.model_copy(update={"partitions": 2})
    env = settings_env(settings) | {"EPOCHSTREAM_COMPACT_EVERY_S": "2", "EPOCHSTREAM_COMPACT_MIN_AGE_S": "0"}
    layout = DataLayout(settings.data_dir)
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen([sys.executable, "-c", CLI, "worker", "--interval", "0.2"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            for batch in range(4):  # drained one after the other: each its own segments, whatever the load
                publish_runs(settings, runs=3, epochs=5, prefix=f"b{batch}-")
                _wait_until(lambda b=batch: _drained(settings, b), worker, tmp_path)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                live = segments(layout, "epoch")
                if live and all("-compacted-" in p.name for p in live) and len(live) <= settings.partitions:
                    break
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
                time.sleep(0.5)
            else:
                raise AssertionError(f"not compacted: {[p.name for p in segments(layout, 'epoch')]}")
        finally:
            stop_processes([worker])
    copies = count_by_id(layout, "epoch")
    assert len(copies) == 4 * 3 * 5 and set(copies.values()) == {1}  # every epoch once, in merged segments
    assert query(settings, "SELECT count(*) AS n FROM epochs").to_pylist() == [{"n": 60}]
    assert all(stored_summary(settings, f"b{b}-{r}")["epochs"] == 5 for b in range(4) for r in range(3))
