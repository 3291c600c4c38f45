"""The whole pipeline with its read model in PostgreSQL, real processes throughout: a drain worker SIGKILLed
inside its read-model transaction, then recovery, then every event once through the API; and `rebuild`
swapping a new generation in while pollers read (never a 404, never a shorter history)."""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
from rq import Worker
from rq.registry import FailedJobRegistry

from epochstream.readmodel.postgres import PostgresStore, masked
from epochstream.settings import settings_env
from schemas.keys import Keys
from tests.conftest import ROOT, ApiServer
from tests.readmodel import content, reader_of
from tests.workers.helpers import publish_runs
from tests.workers.test_crash import CLI, run_worker
from workers.rebuild import rebuild
from workers.scheduling import drain_queue, schedule_once

RUNS, EPOCHS = 4, 30


def _drain(settings, redis_client) -> None:
    assert schedule_once(redis_client, settings, settings.redis_url) >= 1
    Worker([drain_queue(redis_client, settings)], connection=redis_client).work(burst=True)


def test_a_drain_killed_before_commit_then_every_event_once_via_the_api(pg_settings, redis_client):
    settings = pg_settings.model_copy(update={"partitions": 1, "claim_idle_ms": 0})
    publish_runs(settings, runs=RUNS, epochs=EPOCHS, system_every=10)
    keys = Keys(settings.namespace, settings.partitions)
    published = redis_client.xlen(keys.stream(0))

    assert schedule_once(redis_client, settings, settings.redis_url) == 1
    crashed = run_worker(settings, crash_at="before_commit")  # SIGKILL inside the PostgreSQL transaction
    assert crashed.returncode == 0, crashed.stderr[-2000:]
    assert len(FailedJobRegistry(queue=drain_queue(redis_client, settings)).get_job_ids()) == 1  # it was killed
    assert redis_client.xpending(keys.stream(0), keys.group)["pending"] == published  # nothing acked
    reader = reader_of(settings)
    try:
        assert reader.all_runs() == []  # the killed transaction was rolled back: nothing half-applied
        assert [batches for _, _, _, batches in reader.tracking()] == [0]  # only the claim committed
    finally:
        reader.close()

    _drain(settings, redis_client)  # the scheduler frees the dead job's partition; a healthy worker redoes it
    assert redis_client.xpending(keys.stream(0), keys.group)["pending"] == 0
    stored = content(settings)
    assert len(stored["events"]) == published and len(stored["epochs"]) == RUNS * EPOCHS

    status = subprocess.run([sys.executable, "-c", CLI, "status"], env=settings_env(settings), cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-2000:]
    assert f"read model      {masked(settings.read_model_url)}  ok" in status.stdout
    assert f"events stored: {published}" in status.stdout

    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=10) as client:
            listing = client.get("/runs", params={"limit": 50}).json()
            assert sorted(r["run_id"] for r in listing["runs"]) == [f"r{i}" for i in range(RUNS)]
            for i in range(RUNS):
                answer = client.get(f"/runs/r{i}/epochs")
                assert answer.status_code == 200
                epochs = [row["epoch"] for row in answer.json()["epochs"]]
                assert epochs == list(range(EPOCHS))  # each once, in order
                again = client.get(f"/runs/r{i}/epochs", headers={"If-None-Match": answer.headers["etag"]})
                assert again.status_code == 304
                assert client.get(f"/runs/r{i}").json()["status"] == "completed"
            assert client.get("/runs/nope").status_code == 404
        assert not (settings.data_dir / "readmodel").exists()  # no SQLite anywhere: all of it was PostgreSQL
    finally:
        api.stop()


def test_rebuild_into_postgresql_while_pollers_read(pg_settings, redis_client):
    settings = pg_settings.model_copy(update={"partitions": 2})
    publish_runs(settings, runs=RUNS, epochs=EPOCHS, system_every=10)
    _drain(settings, redis_client)
    before = content(settings)
    store = PostgresStore(settings.read_model_url)
    first = store.current()
    api = ApiServer(settings)
    problems: list[str] = []
    polls = [0]
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=api.base_url, timeout=10) as client:
            while not stop.is_set():
                for i in range(RUNS):
                    answer = client.get(f"/runs/r{i}/epochs")
                    rows = answer.json().get("epochs", []) if answer.status_code == 200 else []
                    if answer.status_code != 200 or len(rows) != EPOCHS:
                        problems.append(f"r{i}: {answer.status_code} with {len(rows)} epochs")
                    polls[0] += 1

    threads = [threading.Thread(target=poll) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(2):
            assert rebuild(settings) == RUNS
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        api.stop()
    assert problems == [] and polls[0] > 20, (problems[:5], polls)
    after = store.current()
    assert after is not None and first is not None and after[0] != first[0]
    assert content(settings) == before  # rebuild(log) equals the incremental read model
    assert len(store.retire_old(older_than_s=0)) == 2  # both older generations, once out of use


def test_worker_processes_share_one_postgresql_read_model(pg_settings, redis_client):
    """Two worker processes drain four partitions at once into one database: nothing lost, nothing twice."""
    settings = pg_settings.model_copy(update={"partitions": 4})
    publish_runs(settings, runs=8, epochs=EPOCHS, system_every=10)
    keys = Keys(settings.namespace, settings.partitions)
    published = sum(redis_client.xlen(keys.stream(p)) for p in range(settings.partitions))
    assert schedule_once(redis_client, settings, settings.redis_url) == settings.partitions
    env = settings_env(settings)
    workers = [subprocess.Popen([sys.executable, "-c", CLI, "worker", "--burst", "--no-scheduler"], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    for worker in workers:
        assert worker.wait(120) == 0, worker.stdout.read()[-2000:]
    assert sum(redis_client.xpending(keys.stream(p), keys.group)["pending"] for p in range(4)) == 0
    stored = content(settings)
    assert len(stored["events"]) == published and len(stored["epochs"]) == 8 * EPOCHS
    reader = reader_of(settings)
    try:
        assert sorted(p for p, _, _, batches in reader.tracking() if batches) == [0, 1, 2, 3]
    finally:
        reader.close()


def test_a_local_deployment_moves_its_read_model_to_postgresql_by_rebuild(settings, postgres_url, redis_client):
    """The README's move: a deployment drained into the default SQLite read model, then the same data
    directory started with EPOCHSTREAM_READ_MODEL_URL set and `epochstream rebuild` run once. PostgreSQL then
    holds exactly what SQLite held (rows, summaries, versions aside), the API answers the same, and new
    events drain on into PostgreSQL."""
    local = settings.model_copy(update={"partitions": 2})
    publish_runs(local, runs=RUNS, epochs=EPOCHS, system_every=10)
    _drain(local, redis_client)
    before = content(local)
    api = ApiServer(local)
    try:
        with httpx.Client(base_url=api.base_url, timeout=10) as client:
            answers = {path: client.get(path).json() for path in
                       ["/runs?limit=50", *(f"/runs/r{i}/epochs" for i in range(RUNS))]}
    finally:
        api.stop()

    moved = local.model_copy(update={"read_model_url": postgres_url})
    rebuilt = subprocess.run([sys.executable, "-c", CLI, "rebuild"], env=settings_env(moved), cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stdout[-2000:] + rebuilt.stderr[-2000:]
    assert content(moved) == before
    api = ApiServer(moved)
    try:
        with httpx.Client(base_url=api.base_url, timeout=10) as client:
            assert {path: client.get(path).json() for path in answers} == answers
    finally:
        api.stop()

    publish_runs(moved, runs=1, epochs=3, prefix="late")
    _drain(moved, redis_client)
    reader = reader_of(moved)
    try:
        assert len(reader.all_runs()) == RUNS + 1
    finally:
        reader.close()
