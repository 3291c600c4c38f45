"""Done-when (issue 12, maintenance): two `epochstream compact` and one `epochstream rebuild` at once, twice
over, while a worker process ingests new runs, pollers hammer a real API and analysts' processes run SQL:
no process crashes or errs, no answer is wrong, and every answer about the runs published before is the
same after as before."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from epochstream.layout import DataLayout
from query_api.encoding import strict_loads
from schemas.epoch import EpochV2
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from tests.conftest import ROOT, ApiServer, settings_env
from tests.draining import drain_all
from tests.integration.helpers import RawRun, xadd
from tests.integration.maintenance_reader import QUERIES
from tests.processes import stop_processes
from tests.workers.test_maintenance import answers
from workers.catalog import ensure_catalog, query
from workers.log_reader import count_by_id

OLD_RUNS, NEW_RUNS, EPOCHS = 6, 6, 20
ROUNDS = 2  # of (compact, compact, rebuild) started together
READ_S = 60.0  # how long readers go on at most (they stop when maintenance is done): a bound, never an assertion
CLI = "from epochstream.cli import main; main()"


def _lifecycle(runs: list[RawRun], epochs: range, start: bool = False, finish: bool = False) -> list:
    out = [run.event(RunStartedV2, project="maint") for run in runs] if start else []
    out += [run.event(EpochV2, epoch=e, metrics={"train/loss": 1.0 / (e + 1)}) for e in epochs for run in runs]
    return out + ([run.event(RunFinishedV2, status="completed") for run in runs] if finish else [])


class Poller(threading.Thread):
    """GETs the old runs' summary and epochs; notes any error or any answer short of what was published."""

    def __init__(self, base_url: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.base_url, self.stop, self.problems, self.answers = base_url, stop, [], 0

    def run(self) -> None:
        deadline = time.monotonic() + READ_S
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            n = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                run_id = f"a{n % OLD_RUNS}"
                for path in (f"/runs/{run_id}", f"/runs/{run_id}/epochs", "/runs?project=maint&limit=500"):
                    response = http.get(path)
                    self.answers += 1
                    if response.status_code != 200:
                        self.problems.append(f"{path}: {response.status_code} {response.text[:200]}")
                        continue
                    body = strict_loads(response.content)
                    if path.endswith("/epochs") and [e["epoch"] for e in body["epochs"]] != list(range(EPOCHS)):
                        self.problems.append(f"{path}: {len(body['epochs'])} epochs")
                    elif path.startswith("/runs/") and "/" not in path[6:] and (
                            body["epochs"] != EPOCHS or body["status"] != "completed"):
                        self.problems.append(f"{path}: {body['epochs']} epochs, {body['status']}")
                    elif path.startswith("/runs?"):
                        old = {r["run_id"] for r in body["runs"] if r["run_id"].startswith("a")}
                        if len(old) != OLD_RUNS:
                            self.problems.append(f"/runs: {len(old)} of the old runs listed")
                n += 1


def _old_answers(settings) -> dict[str, list]:
    return {name: [row for row in rows if str(row.get("run_id", "a")).startswith("a")]
            for name, rows in answers(settings).items()}


def _spawn(settings, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args, "--data-dir", str(settings.data_dir)],
                            env=settings_env(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_compact_twice_and_rebuild_at_once_during_ingest_polls_and_sql(settings, redis_client, tmp_path):
    settings = settings.model_copy(update={"drain_batch": 10})
    xadd(redis_client, settings, _lifecycle([RawRun(f"a{i}") for i in range(OLD_RUNS)], range(EPOCHS), True, True))
    new_runs = [RawRun(f"b{i}") for i in range(NEW_RUNS)]
    drain_all(redis_client, settings)
    ensure_catalog(settings)
    before = _old_answers(settings)
    expected = {name: query(settings, sql).to_pylist() for name, sql in QUERIES.items()}
    expected = {name: [list(row.values()) for row in rows][0] for name, rows in expected.items()}

    env = settings_env(settings)
    worker_log = open(settings.data_dir.parent / "worker.log", "w")  # noqa: SIM115 - a pipe nobody reads can fill
    worker = subprocess.Popen([sys.executable, "-c", CLI, "worker", "--interval", "0.2"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=worker_log, text=True)
    api = ApiServer(settings)
    stop = threading.Event()
    pollers = [Poller(api.base_url, stop) for _ in range(2)]
    readers = [subprocess.Popen([sys.executable, "-m", "tests.integration.maintenance_reader",
                                 settings.model_dump_json(), str(READ_S), str(tmp_path / "stop")], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    published = 0
    outcomes = []
    t0 = time.monotonic()
    try:
        for poller in pollers:
            poller.start()
        xadd(redis_client, settings, _lifecycle(new_runs, range(0), start=True))
        for _ in range(ROUNDS):
            jobs = [_spawn(settings, "compact", "--min-age", "0", "--wait", "60"),
                    _spawn(settings, "compact", "--min-age", "0", "--wait", "60"),
                    _spawn(settings, "rebuild", "--wait", "60")]
            while any(job.poll() is None for job in jobs) and published < EPOCHS:
                xadd(redis_client, settings, _lifecycle(new_runs, range(published, published + 1)))
                published += 1
                time.sleep(0.1)
            outcomes += [(job.args[3], job.wait(timeout=120), *job.communicate(timeout=60)) for job in jobs]
            assert worker.poll() is None, f"the worker died: {Path(worker_log.name).read_text()[-3000:]}"
        while published < EPOCHS:
            xadd(redis_client, settings, _lifecycle(new_runs, range(published, published + 1)))
            published += 1
        xadd(redis_client, settings, _lifecycle(new_runs, range(0), finish=True))
        marks = {"maintenance": time.monotonic() - t0}
        (tmp_path / "stop").touch()
        reports = []
        for reader in readers:
            out, err = reader.communicate(timeout=READ_S + 60)
            assert reader.returncode == 0, err[-3000:]
            reports.append(json.loads(out))
        marks["readers"] = time.monotonic() - t0
        layout = DataLayout(settings.data_dir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(count_by_id(layout, "run_finished")) < OLD_RUNS + NEW_RUNS:
            time.sleep(0.3)
        marks["drained"] = time.monotonic() - t0
    finally:
        stop.set()
        for poller in pollers:
            poller.join(timeout=60)
        api.stop()
        stop_processes([worker])
        worker_log.close()
        for reader in readers:
            if reader.poll() is None:
                reader.kill()

    for command, code, out, err in outcomes:
        assert code == 0 and "Traceback" not in err and "error" not in err.lower(), (command, out, err[-3000:])
    assert sum("rebuilt the read model" in out for _, _, out, _ in outcomes) == ROUNDS
    assert sum("compaction done" in out for _, _, out, _ in outcomes) == 2 * ROUNDS
    problems = [p for poller in pollers for p in poller.problems]
    assert problems == [], problems[:10]
    assert all(poller.answers > 20 for poller in pollers)
    for report in reports:
        assert report["errors"] == [], report["errors"][:5]
        for name, seen in report["answers"].items():
            assert seen and all(answer == expected[name] for answer in seen), (name, expected[name], seen[:5])
    assert _old_answers(settings) == before  # the old runs' every view, row for row, after all that
    layout = DataLayout(settings.data_dir)
    for event_type, per_run in (("epoch", EPOCHS), ("run_started", 1), ("run_finished", 1)):
        ids = count_by_id(layout, event_type)
        assert len(ids) == (OLD_RUNS + NEW_RUNS) * per_run, event_type  # the new runs: every event, once
    new = query(settings, "SELECT count(*) AS n, sum(epochs) AS e FROM runs WHERE run_id LIKE 'b%'").to_pylist()
    assert new == [{"n": NEW_RUNS, "e": NEW_RUNS * EPOCHS}]
    print(f"{published} ingest rounds, {sum(p.answers for p in pollers)} API answers, "
          f"{sum(len(r['answers']['epochs']) for r in reports)} SQL sessions; seconds: {marks}")
