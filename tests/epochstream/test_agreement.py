"""Configuration agreement (`epochstream.agreement`): the partition count is recorded in the broker on
first use; a producer with another count spools (never drops) and delivers once the count matches, a drain
refuses, `epochstream up` refuses; and `up` warns about a Redis that keeps nothing on disk."""

from __future__ import annotations

import logging
import subprocess
import time

import pytest
import redis

from epochstream.agreement import PartitionMismatch, agree
from epochstream.broker import ServerProcess, answers, free_port, server_binary
from producer import Publisher, start_run
from schemas.keys import Keys, partition_of
from tests.producer.conftest import run_events
from workers.drain import drain

EPOCHS = 20


def run_id_moved_by(counts: tuple[int, int]) -> str:
    """A run id whose partition differs between the two counts (so routing by the wrong one is visible)."""
    return next(f"moved-{i}" for i in range(1000)
                if partition_of(f"moved-{i}", counts[0]) != partition_of(f"moved-{i}", counts[1]))


def test_the_first_count_is_recorded_and_a_different_one_refused(redis_client, namespace):
    assert agree(redis_client, Keys(namespace, 4)) == 4  # first use: recorded
    assert redis_client.hgetall(Keys(namespace).config) == {b"partitions": b"4", b"namespace": namespace.encode()}
    assert agree(redis_client, Keys(namespace, 4)) == 4
    with pytest.raises(PartitionMismatch, match=r"records 4 partitions .* EPOCHSTREAM_PARTITIONS=2.* Set "
                                                r"EPOCHSTREAM_PARTITIONS=4"):
        agree(redis_client, Keys(namespace, 2))
    assert redis_client.hget(Keys(namespace).config, "partitions") == b"4"  # the refused count changed nothing


def test_a_producer_with_another_count_spools_and_delivers_once_it_matches(settings, redis_client, caplog):
    """Workers (or a first producer) recorded 4 partitions; a producer with 2 keeps every event in its
    spool, says why, and drops nothing. A process with the recorded count delivers them where the
    workers read them: the run's partition under 4, not under 2."""
    agree(redis_client, Keys(settings.namespace, 4))
    wrong = settings.model_copy(update={"partitions": 2, "install_signal_handlers": False})
    run_id = run_id_moved_by((2, 4))
    publisher = Publisher(wrong)
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"):
        with start_run("agree", run_id=run_id, publisher=publisher) as run:
            for epoch in range(EPOCHS):
                run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)})
        assert publisher.close(1.0) is False
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "partition count mismatch" in said and "EPOCHSTREAM_PARTITIONS=4" in said
    assert (publisher.published, publisher.dropped, publisher.spooled) == (0, 0, EPOCHS + 2)
    assert publisher.errors["PARTITIONS"] >= 1
    assert not any(redis_client.xlen(s) for s in Keys(settings.namespace, 4).all_streams())  # nothing went out

    right = Publisher(settings.model_copy(update={"partitions": 4}))
    assert right.flush(10)
    right.close()
    assert (right.published, right.dropped) == (EPOCHS + 2, 0)
    keys = Keys(settings.namespace, 4)
    events = run_events(redis_client, settings.model_copy(update={"partitions": 4}), run_id)
    assert [e.seq for e in events] == list(range(1, EPOCHS + 3))
    assert redis_client.xlen(keys.stream_for_run(run_id)) == EPOCHS + 2  # in the partition the workers drain
    assert redis_client.xlen(Keys(settings.namespace, 2).stream_for_run(run_id)) == 0


def test_a_drain_with_another_count_refuses(settings, redis_client):
    agree(redis_client, Keys(settings.namespace, 4))
    wrong = settings.model_copy(update={"partitions": 2})
    with pytest.raises(PartitionMismatch, match="records 4 partitions"):
        drain(redis_client, wrong, 0)
    assert not redis_client.exists(Keys(settings.namespace, 2).stream(0))  # it touched no stream


def test_up_refuses_another_count_before_starting_anything(settings, redis_client, tmp_path):
    from epochstream.stack import Stack, StackFailed, running_stack

    agree(redis_client, Keys(settings.namespace, 4))
    stack = Stack(settings.model_copy(update={"partitions": 2, "data_dir": tmp_path / "d", "api_port": 0}),
                  say=lambda _: None)
    with pytest.raises(StackFailed, match="records 4 partitions.*nothing was started"):
        stack.start()
    assert stack.children == [] and running_stack(tmp_path / "d") is None


def test_up_warns_when_redis_keeps_nothing_on_disk(settings, tmp_path):
    """A real stack on a Redis with neither AOF nor RDB: the warning is among the lines `up` prints."""
    from epochstream.stack import Stack

    server = ServerProcess(directory=tmp_path / "volatile", persistent=False).start()
    lines: list[str] = []
    try:
        stack = Stack(settings.model_copy(update={"redis_url": server.url, "data_dir": tmp_path / "d",
                                                  "api_port": 0}), workers=1, say=lines.append)
        stack.start()
        stack.stop(drain=False)
    finally:
        server.stop()
    warnings = [line for line in lines if line.startswith("warning")]
    assert len(warnings) == 1 and "keeps nothing on disk" in warnings[0] and "appendonly yes" in warnings[0]


def test_the_persistence_check_knows_aof_and_tolerates_a_disabled_config(tmp_path):
    from epochstream.stack import persistence_warning

    persistent = ServerProcess(directory=tmp_path / "aof", persistent=True).start()
    port = free_port()
    locked = subprocess.Popen([server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--rename-command", "CONFIG", ""],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not answers(f"redis://127.0.0.1:{port}/0") and time.monotonic() < deadline:
            time.sleep(0.05)
        aof = redis.Redis.from_url(persistent.url)
        assert persistence_warning(aof) is None  # appendonly yes
        no_config = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(redis.ResponseError):
            no_config.config_get("appendonly")  # CONFIG really is disabled there
        assert persistence_warning(no_config) is None  # cannot tell: no warning, and no error
        aof.close()
        no_config.close()
    finally:
        persistent.stop()
        locked.terminate()
        locked.wait(10)
