"""Spooled events reach the broker with no other training: `epochstream spool status|push`, and the courier in
`epochstream worker`. Real processes: a trainer that runs its whole training while no broker answers and exits,
then the command, then the broker's stream."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from producer.spool.status import ORPHANED, WRITING, spool_status
from tests.conftest import ROOT, settings_env
from tests.producer.child import TRAIN_EPOCHS
from tests.producer.conftest import run_events
from tests.producer.servers import Server, wait_until
from tests.producer.test_processes import child, wait_for_line

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "from epochstream.cli import main; main()"]


def down_env(settings, port: int) -> dict[str, str]:
    """The trainer's environment: the broker's URL, with nothing listening there yet."""
    return settings_env(settings) | {"EPOCHSTREAM_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                                     "EPOCHSTREAM_EXIT_FLUSH_S": "0.5"}


def train_while_down(settings, port: int) -> str:
    proc = child("train", "-", down_env(settings, port))
    run_id = wait_for_line(proc, "run ").split()[1]
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "epochstream spool push" in stderr  # what was left, and what delivers it, said at exit
    return run_id


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env | {"COLUMNS": "200"}, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def assert_once_in_order(server: Server, settings, run_id: str) -> None:
    events = run_events(server.client(), settings, run_id)
    assert [e.seq for e in events] == list(range(1, TRAIN_EPOCHS + 3))
    assert [e.epoch for e in events if e.type == "epoch"] == list(range(TRAIN_EPOCHS))
    assert events[0].type == "run_started" and events[-1].type == "run_finished"


def test_spool_push_delivers_a_finished_trainings_spool_once_in_order(settings, tmp_path):
    from epochstream.broker import free_port

    port = free_port()
    run_id = train_while_down(settings, port)
    env = down_env(settings, port)

    status = cli(env, "spool", "status", "--json")
    assert status.returncode == 0, status.stderr
    owners = json.loads(status.stdout)["owners"]
    assert [(o["state"], o["events"], [r["run_id"] for r in o["runs"]]) for o in owners] == [
        (ORPHANED, TRAIN_EPOCHS + 2, [run_id])]
    assert "epochstream spool push" in owners[0]["why"]
    refused = cli(env, "spool", "push", "--timeout", "1")  # the broker is still away: nothing lost, exit 1
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
    assert spool_status(settings.resolved_spool_dir() / settings.namespace)[0].events == TRAIN_EPOCHS + 2

    server = Server(tmp_path / "broker", port=port)  # the broker comes up where the trainer looked
    try:
        started = time.monotonic()
        pushed = cli(env, "spool", "push")
        took = time.monotonic() - started
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.startswith(f"delivered {TRAIN_EPOCHS + 2} event(s)")
        print(f"\nspool push: {TRAIN_EPOCHS + 2} events delivered, the command took {took:.2f} s")
        assert_once_in_order(server, settings, run_id)
        again = cli(env, "spool", "push")  # nothing left: nothing delivered twice
        assert again.returncode == 0 and again.stdout.startswith("delivered 0 event(s)")
        assert_once_in_order(server, settings, run_id)
        assert list((settings.resolved_spool_dir() / settings.namespace).glob("*.seg")) == []
        assert "nothing waits" in cli(env, "spool", "status").stdout
    finally:
        server.stop()


def test_a_worker_delivers_what_a_finished_training_left(settings, tmp_path):
    from epochstream.broker import free_port

    port = free_port()
    run_id = train_while_down(settings, port)
    server = Server(tmp_path / "broker", port=port)
    # --no-scheduler: nothing drains (and trims) the stream, so the test can read what arrived.
    worker = subprocess.Popen([*CLI, "worker", "--no-scheduler"], env=down_env(settings, port), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        wait_until(lambda: len(run_events(server.client(), settings, run_id)) == TRAIN_EPOCHS + 2, timeout=60,
                   what="the worker to deliver the spool")
        print(f"\nworker: the spool delivered {time.monotonic() - started:.2f} s after the worker started")
        assert_once_in_order(server, settings, run_id)
        wait_until(lambda: not list((settings.resolved_spool_dir() / settings.namespace).glob("*.seg")),
                   what="the delivered segments to go")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        worker.stderr.close()
        server.stop()


def test_status_tells_a_live_writer_from_a_dead_one(settings, dead_url):
    env = settings_env(settings) | {"EPOCHSTREAM_REDIS_URL": dead_url}
    proc = child("spool", "live-writer", env)
    try:
        wait_for_line(proc, "spooled ")
        [alive] = spool_status(settings.resolved_spool_dir() / settings.namespace)
        assert alive.state == WRITING and alive.pid == proc.pid and "delivers them itself" in alive.why
        assert [r.run_id for r in alive.runs] == ["live-writer"] and alive.events >= 11  # run_started, epochs 0..9
        pushed = cli(env, "spool", "push", "--timeout", "1")  # a live writer's spool is not ours to take
        assert pushed.returncode == 0 and "left alone" in pushed.stdout
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    [dead] = spool_status(settings.resolved_spool_dir() / settings.namespace)
    assert dead.state == ORPHANED and dead.events >= alive.events
