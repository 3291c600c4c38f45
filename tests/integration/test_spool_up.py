"""Broker down for a whole training, the trainer gone: `epochstream up` on the same host delivers what it
spooled, with no other producer started (real processes; the stack's own embedded broker)."""

from __future__ import annotations

import contextlib
import time

import httpx
import pyarrow.dataset as ds
import pytest
import redis

from epochstream.broker import announced_url, free_port
from producer.spool.status import ORPHANED, spool_status
from tests.conftest import settings_env
from tests.people.test_up import Up, wait_for
from tests.producer.child import TRAIN_EPOCHS
from tests.producer.test_processes import child, wait_for_line

pytestmark = pytest.mark.slow


def stop_left_broker(settings) -> None:
    """A killed `up` leaves its broker for the next `up` to stop; a test has no next `up`."""
    url = announced_url(settings.model_copy(update={"redis_url": None}))
    if url is not None:
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(url, socket_timeout=5).shutdown(nosave=True)


def test_up_delivers_a_finished_trainings_spool_once_in_order(settings, tmp_path):
    env = settings_env(settings)
    env.pop("EPOCHSTREAM_REDIS_URL")  # no URL and no `up` yet: no broker to find, everything spools
    env["EPOCHSTREAM_EXIT_FLUSH_S"] = "0.5"
    trainer = child("train", "-", env)
    run_id = wait_for_line(trainer, "run ").split()[1]
    trainer.communicate(timeout=60)
    assert trainer.returncode == 0
    [left] = spool_status(settings.resolved_spool_dir() / settings.namespace)
    assert left.state == ORPHANED and left.events == TRAIN_EPOCHS + 2

    started = time.monotonic()
    up = Up(settings, free_port(), tmp_path / "up.log")
    ready = time.monotonic()
    try:
        def arrived():
            try:
                answer = httpx.get(f"{up.url}/runs/{run_id}", timeout=2)
            except httpx.HTTPError:
                return None
            return answer.status_code == 200 and answer.json()["status"] == "completed" and answer.json()

        summary = wait_for(arrived, timeout=60)
        done = time.monotonic()
        print(f"\nup: the spooled run was served {done - ready:.2f} s after `up` was ready "
              f"({done - started:.2f} s after it started)")
        assert summary["epochs"] == TRAIN_EPOCHS
        epochs = httpx.get(f"{up.url}/runs/{run_id}/epochs").json()["epochs"]
        assert [e["epoch"] for e in epochs] == list(range(TRAIN_EPOCHS))
        assert up.interrupt() == 0
    finally:
        up.kill()
        stop_left_broker(settings)
    logged = []
    for kind in ("run_started", "epoch", "run_finished"):
        table = ds.dataset(settings.data_dir / "log" / kind, format="parquet").to_table(
            columns=["event_id", "run_id", "seq", "stream_id"])
        logged += [r for r in table.to_pylist() if r["run_id"] == run_id]
    # Exactly once, and in order: the stream took them in seq order.
    assert sorted(r["seq"] for r in logged) == list(range(1, TRAIN_EPOCHS + 3))
    in_stream_order = sorted(logged, key=lambda r: tuple(int(x) for x in r["stream_id"].split("-")))
    assert [r["seq"] for r in in_stream_order] == list(range(1, TRAIN_EPOCHS + 3))
    assert spool_status(settings.resolved_spool_dir() / settings.namespace) == []
