"""Transient vs terminal at the drain, in real processes: an entry that kills every worker that processes it is
found and dead-lettered alone; the good entries of its batch, delivered as often, are stored."""

from __future__ import annotations

import signal
import subprocess
import sys

from epochstream.faults import CRASH_ON_ENV
from schemas.keys import PAYLOAD_FIELD, Keys
from tests.conftest import ROOT, settings_env
from tests.integration.helpers import DRAIN
from tests.readmodel import epoch_numbers
from tests.workers.test_drain import good_event
from workers.dead_letters import list_dead_letters


def _drain_process(settings, partition: int) -> int:
    env = settings_env(settings)
    env[CRASH_ON_ENV] = "KILLER"
    env.pop("PYTEST_CURRENT_TEST", None)
    proc = subprocess.run([sys.executable, "-c", DRAIN, settings.model_dump_json(), settings.redis_url,
                           str(partition)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr[-2000:]
    return proc.returncode


def test_an_entry_that_kills_its_worker_is_dead_lettered_alone_and_its_batch_is_stored(settings, redis_client):
    settings = settings.model_copy(update={"partitions": 1, "claim_idle_ms": 0, "max_deliveries": 2})
    keys = Keys(settings.namespace, settings.partitions)
    killer = good_event("k", 6, 6).replace(b'"train/loss"', b'"KILLER"')
    for seq in range(1, 12):
        payload = killer if seq == 6 else good_event("k", seq, seq)
        redis_client.xadd(keys.stream(0), {PAYLOAD_FIELD: payload})
    codes = []
    for _ in range(8):  # bounded: 2 deaths in the batch, 2 alone, then the drain that sets it aside
        codes.append(_drain_process(settings, 0))
        if codes[-1] == 0:
            break
    assert codes == [-signal.SIGKILL] * 4 + [0]
    (letter,) = list_dead_letters(redis_client, settings)
    assert letter.payload == killer
    assert "died each of the 2 times it processed this entry alone" in letter.reason
    assert epoch_numbers(settings, "k") == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert redis_client.xpending(keys.stream(0), keys.group)["pending"] == 0
    assert redis_client.hlen(keys.solo_attempts(0)) == 0
