"""D8: analysts' SQL sessions in other processes while snapshots are refreshed and workers ingest: the
`runs` view never reads a snapshot file while it is being replaced, so every answer is right."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from schemas.epoch import EpochV2
from schemas.run_started import RunStartedV2
from tests.conftest import ROOT, settings_env
from tests.draining import drain_all
from tests.integration.helpers import RawRun, xadd
from workers.catalog import query

RUNS = 8
SECONDS = 3.0  # how long the three processes overlap; a bound for the loops, never an assertion


def _start(role: str, settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.sql_process", role, settings.model_dump_json(),
                             str(SECONDS)], env=settings_env(settings), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_count_of_runs_is_always_right_while_snapshots_refresh_and_workers_ingest(settings, redis_client):
    runs = [RawRun(f"s{i}") for i in range(RUNS)]
    xadd(redis_client, settings, [run.event(RunStartedV2, project="d8") for run in runs])
    drain_all(redis_client, settings)
    assert query(settings, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": RUNS}]  # the first snapshot

    counter, snapshots = _start("count", settings), _start("snapshot", settings)
    epoch, deadline = 0, time.monotonic() + SECONDS + 30
    while (counter.poll() is None or snapshots.poll() is None) and time.monotonic() < deadline:
        xadd(redis_client, settings, [run.event(EpochV2, epoch=epoch, metrics={"train/loss": 1.0 / (epoch + 1)})
                                      for run in runs])
        drain_all(redis_client, settings)
        epoch += 1
    outputs = {}
    for name, proc in (("count", counter), ("snapshot", snapshots)):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        outputs[name] = json.loads(out)
    answers, errors = outputs["count"]["answers"], outputs["count"]["errors"]
    assert errors == [], errors[:5]
    assert answers and set(answers) == {RUNS}, sorted(set(answers))
    assert outputs["snapshot"]["taken"] >= 5 and epoch >= 3  # the three really overlapped
    print(f"{len(answers)} counts, {outputs['snapshot']['taken']} snapshots, {epoch} ingest rounds")
    assert query(settings, "SELECT min(epochs) AS n FROM runs").to_pylist() == [{"n": epoch}]
