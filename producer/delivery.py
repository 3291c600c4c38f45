"""Putting records into the broker exactly once, and telling a broker that is away from a bad record.

Each run's records go in one Lua call per chunk: an XADD for every record whose `seq` is above the run's
high-water mark (`Keys.run_seq`), then the mark moves up. A batch retried after a lost reply, or replayed
from the spool by this or by another process, adds nothing twice, so every retry is safe. The mark
expires `SEQ_TTL_S` after a run's last event.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.retry import Retry

from epochstream.broker import connect
from epochstream.errors import TransientError
from producer.spool import Record
from schemas.keys import PAYLOAD_FIELD

SEQ_TTL_S = 7 * 24 * 3600
CHUNK = 500  # records per Lua call

ADD_ONCE = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local added = 0
for i = 3, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[i + 1])
    last = seq
    added = added + 1
  end
end
redis.call('SET', KEYS[2], last, 'EX', ARGV[1])
return added
"""

# The broker is there but cannot take writes now (loading, out of memory, a replica, refusing us): retry
# later, keep the events. Any other error reply is about the records themselves and will not go away.
_TRANSIENT = (TransientError, redis.ConnectionError, redis.TimeoutError, OSError,
              OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterDownError, NoPermissionError)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("BUSY")


def client_for(url: str, timeout_s: float) -> redis.Redis:
    """A client that fails fast: the publisher does its own retrying (and spooling meanwhile)."""
    return connect(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))


def send(client: redis.Redis, records: list[Record]) -> list[tuple[int, str]]:
    """Add `records` (in order per run) to their streams, each exactly once, in one round trip.

    Raises a transient error (connection, timeout, a broker that refuses writes for now): then nothing is
    known and the whole batch may be retried. Returns the chunks the broker rejected for good, as
    (number of records, reason).
    """
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault((record.stream, record.seq_key), []).append(record)
    calls = []
    for (stream, seq_key), group in groups.items():
        for start in range(0, len(group), CHUNK):
            chunk = group[start:start + CHUNK]
            args: list[object] = [ADD_ONCE, 2, stream, seq_key, SEQ_TTL_S, PAYLOAD_FIELD]
            for record in chunk:
                args += (record.seq, record.payload)
            calls.append((len(chunk), args))
    if len(calls) == 1:  # one run, one chunk (an epoch at a time): a plain call costs a third less CPU
        _, args = calls[0]
        try:
            results = [client.eval(*args)]
        except redis.ResponseError as exc:
            results = [exc]
    else:
        pipe = client.pipeline(transaction=False)
        for _, args in calls:
            pipe.eval(*args)
        results = pipe.execute(raise_on_error=False)
    rejected = []
    for (size, _), result in zip(calls, results, strict=True):
        if isinstance(result, Exception):
            if is_transient(result):
                raise result
            rejected.append((size, str(result)))
    return rejected
