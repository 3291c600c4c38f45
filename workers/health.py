"""What holds a partition's drain up right now that is not the entries' fault: a full disk, a locked read model.

The drain keeps such a batch pending and retries it with back-off (never dead-letters it), and records the
problem here, in `<ns>:health:{p}`, for `epochstream status` and the logs; the first batch that goes through
clears it. A broker outage cannot be recorded in the broker: it goes to the log only.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import redis

from epochstream.errors import BrokerUnavailable, LogStoreUnavailable
from epochstream.readmodel import ReadModelError, StaleFence
from epochstream.readmodel.errors import ReadModelRejected
from schemas.keys import Keys

log = logging.getLogger("epochstream.drain")

HEALTH_TTL_S = 600  # a record nobody clears (its drain died with it) says nothing after this long

BROKER_FAILURES = (redis.ConnectionError, redis.TimeoutError, BrokerUnavailable)
# Failures of the machinery, not of the entries: retried, never counted against them. Of ReadModelError's
# terminal members, StaleFence is caught before these, and ReadModelRejected (PostgreSQL refused a value of
# the batch) is the entries' fault: counted against them like any bad entry.
STORAGE_FAILURES = (OSError, sqlite3.OperationalError, ReadModelError, LogStoreUnavailable)
INFRASTRUCTURE_FAILURES = BROKER_FAILURES + STORAGE_FAILURES


def is_infrastructure(exc: BaseException) -> bool:
    return isinstance(exc, INFRASTRUCTURE_FAILURES) and not isinstance(exc, StaleFence | ReadModelRejected)


def describe(exc: BaseException, data_dir: Path, read_model: str) -> str:
    """One line for a human: what failed and where ("disk full at /data/log/epoch: ..."). `read_model`: where
    the read model lives (`Store.describe()`: the data directory, or a PostgreSQL URL without password)."""
    if isinstance(exc, BROKER_FAILURES):
        return f"broker unavailable: {exc}"
    if isinstance(exc, LogStoreUnavailable):
        return f"log store unavailable: {exc}"
    if isinstance(exc, OSError):
        where = exc.filename or data_dir
        if exc.errno == errno.ENOSPC:
            return f"disk full at {where}"
        return f"storage error at {where}: {exc.strerror or exc}"
    text = str(exc)
    if "full" in text:  # sqlite3: "database or disk is full"
        return f"disk full at {data_dir} (read model: {text})"
    return f"read model unavailable at {read_model}: {text}"


def report(client: redis.Redis, keys: Keys, partition: int, problem: str, attempts: int, since: datetime) -> None:
    """Record the problem for `status` (best effort: a broker outage is what it may be about)."""
    log.warning("partition %d: %s; the batch stays pending and is retried (attempt %d)", partition, problem,
                attempts)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hset(keys.health(partition), mapping={"problem": problem, "attempts": attempts,
                                                    "since": since.isoformat(),
                                                    "updated": datetime.now(UTC).isoformat()})
        pipe.expire(keys.health(partition), HEALTH_TTL_S)
        pipe.execute()
    except BROKER_FAILURES:
        pass


def clear(client: redis.Redis, keys: Keys, partition: int) -> None:
    client.delete(keys.health(partition))


def problems(client: redis.Redis, keys: Keys) -> dict[int, dict[str, str]]:
    """partition -> {problem, attempts, since, updated} for every partition held up now."""
    pipe = client.pipeline(transaction=False)
    for partition in range(keys.partitions):
        pipe.hgetall(keys.health(partition))
    out = {}
    for partition, fields in enumerate(pipe.execute()):
        if fields:
            out[partition] = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
    return out
