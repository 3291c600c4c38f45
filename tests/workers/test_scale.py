"""Done-when: 32 publisher processes x 200 epochs plus system samples, drained by 2 worker processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from epochstream.layout import DataLayout
from epochstream.readmodel.reader import ReadModelReader
from schemas.read_models import RunSummary
from tests.conftest import ROOT, settings_env
from tests.processes import stop_processes
from tests.readmodel import run_ids
from tests.readmodel import summary as stored_summary
from tests.workers.publisher_process import SYSTEM_EVERY, val_loss
from workers.catalog import query
from workers.log_reader import count_by_id

PUBLISHERS, EPOCHS = 32, 200
PER_RUN = 1 + EPOCHS + EPOCHS // SYSTEM_EVERY + 1
WORKER = "from epochstream.cli import main; main()"


@pytest.mark.slow
def test_32_publishers_2_workers_every_event_once_in_order(settings, redis_client, tmp_path):
    env = settings_env(settings)
    # A file, not a pipe nobody reads: a worker blocked on a full stderr pipe stalls its partition.
    logs = [open(tmp_path / f"worker-{i}.log", "w") for i in range(2)]  # noqa: SIM115 - closed below
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, "worker", "--interval", "0.2"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT) for log in logs]
    layout = DataLayout(settings.data_dir)
    try:
        publishers = [subprocess.Popen([sys.executable, str(ROOT / "tests/workers/publisher_process.py"), str(i),
                                        str(EPOCHS)], env=env, cwd=ROOT) for i in range(PUBLISHERS)]
        assert [p.wait(timeout=120) for p in publishers] == [0] * PUBLISHERS
        expected = PUBLISHERS * PER_RUN
        deadline = time.monotonic() + 120
        stored: dict[str, int] = {}
        while time.monotonic() < deadline:
            stored = {}
            for event_type in ("run_started", "epoch", "system", "run_finished"):
                stored.update(count_by_id(layout, event_type))
            finished = [r for r in run_ids(settings) if stored_summary(settings, r)["events"] == PER_RUN]
            if len(stored) >= expected and len(finished) == PUBLISHERS:
                break
            assert all(w.poll() is None for w in workers), "a worker process died"
            time.sleep(0.5)
    finally:
        stop_processes(workers)
        for log in logs:
            log.close()
    assert len(stored) == expected
    assert set(stored.values()) == {1}  # no crash, no redelivery: one physical copy of each
    assert query(settings, "SELECT count(*) AS n FROM epochs").to_pylist() == [{"n": PUBLISHERS * EPOCHS}]
    for i in range(PUBLISHERS):
        run_id = f"p{i}"
        epochs = ReadModelReader(settings.data_dir).epochs(run_id)
        assert [e.epoch for e in epochs] == list(range(EPOCHS))
        seqs = [e.seq for e in epochs]
        assert seqs == sorted(seqs)
        summary = RunSummary.model_validate(stored_summary(settings, run_id))
        brute = min(range(EPOCHS), key=lambda e, i=i: (val_loss(i, e), e))
        assert (summary.best_epoch, summary.best_value) == (brute, val_loss(i, brute))
        assert summary.status == "completed" and summary.epochs == EPOCHS
    runs = query(settings, "SELECT count(*) AS n, sum(events) AS events FROM runs").to_pylist()
    assert runs == [{"n": PUBLISHERS, "events": expected}]
