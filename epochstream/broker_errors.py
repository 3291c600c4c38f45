"""Redis errors in our words: the one place a broker library error is classified and explained.

`error_code(exc)` names what went wrong by the protocol's own classification (the first word of an error
reply: `MOVED`, `OOM`, `NOPERM`, ...), or a name for a failure to talk (`CONNECTION`, `TIMEOUT`), never by
the prose of a message. `broker_error(exc)` turns any broker failure into one of our errors, transient
(retry: the broker is away, loading, out of memory, a replica) or terminal (a setting to fix: credentials,
permissions, a cluster node given as a plain URL), whose message says what to do. Users see these, never
redis-py's text alone.
"""

from __future__ import annotations

import redis
from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ExecAbortError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)

from epochstream.agreement import PartitionMismatch
from epochstream.errors import BrokerUnavailable, ConfigurationError, EpochstreamError, TerminalError

__all__ = ["BrokerRefused", "broker_error", "error_code"]

# redis-py strips the code from the replies it maps to its own classes: put it back.
_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (MovedError, "MOVED"), (AskError, "ASK"), (TryAgainError, "TRYAGAIN"), (ClusterDownError, "CLUSTERDOWN"),
    (ReadOnlyError, "READONLY"), (OutOfMemoryError, "OOM"), (BusyLoadingError, "LOADING"),
    (NoPermissionError, "NOPERM"), (AuthenticationError, "AUTH"), (NoScriptError, "NOSCRIPT"),
    (ExecAbortError, "EXECABORT"), (BrokerUnavailable, "NO_BROKER"), (PartitionMismatch, "PARTITIONS"),
    (redis.TimeoutError, "TIMEOUT"), (TimeoutError, "TIMEOUT"), (redis.ConnectionError, "CONNECTION"),
    (OSError, "CONNECTION"),
    (RedisClusterException, "CLUSTER"),  # not a RedisError: e.g. a slot no node serves, slots being moved
)

RETRY_LATER = frozenset({"CONNECTION", "TIMEOUT", "NO_BROKER", "LOADING", "OOM", "TRYAGAIN", "CLUSTERDOWN",
                         "CLUSTER", "MASTERDOWN", "BUSY", "READONLY"})


class BrokerRefused(TerminalError):
    """The broker answered with an error no retry changes (permissions, credentials, a wrong key type)."""


def error_code(exc: BaseException) -> str:
    """The broker's error code for `exc` (`MOVED`, `OOM`, `WRONGTYPE`, ...), or a name for a failure to talk."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    if isinstance(exc, redis.ResponseError):
        first = str(exc).split(" ", 1)[0]
        return first if first.isalpha() and first.isupper() else "ERR"
    return type(exc).__name__


_SAY = {
    "CONNECTION": "cannot reach Redis ({exc}): start it, or point EPOCHSTREAM_REDIS_URL at one (unset, the broker "
                  "of `epochstream up` is used)",
    "TIMEOUT": "Redis did not answer in time ({exc}): it is overloaded or unreachable; try again, or check "
               "EPOCHSTREAM_REDIS_URL",
    "LOADING": "Redis is loading its data after a restart ({exc}): try again in a moment",
    "OOM": "Redis is out of memory ({exc}): raise its maxmemory, or let the workers drain (and trim) the streams",
    "READONLY": "EPOCHSTREAM_REDIS_URL points at a read-only replica ({exc}): point it at the primary",
    "AUTH": "Redis refused the credentials ({exc}): check the user and password in EPOCHSTREAM_REDIS_URL",
    "NOPERM": "the Redis user of EPOCHSTREAM_REDIS_URL may not do this ({exc}): workers, the scheduler and the "
              "maintenance commands need a fuller user than producers (README, \"A producer-only Redis user\")",
    "MOVED": "EPOCHSTREAM_REDIS_URL points at one node of a Redis Cluster ({exc}): write it as "
             "redis+cluster://host:port[,host:port...]",
    "ASK": "EPOCHSTREAM_REDIS_URL points at one node of a Redis Cluster ({exc}): write it as "
           "redis+cluster://host:port[,host:port...]",
    "CLUSTER": "the Redis Cluster cannot serve some slots now ({exc}): try again once it has settled",
}


def broker_error(exc: BaseException) -> EpochstreamError:
    """`exc` (from redis-py, a socket, or already ours) as our error, with a message that says what to do."""
    if isinstance(exc, EpochstreamError):
        return exc
    code = error_code(exc)
    said = _SAY.get(code, "Redis answered {code}: {exc}").format(code=code, exc=exc)
    if code in RETRY_LATER:
        return BrokerUnavailable(said)
    if code in ("MOVED", "ASK", "AUTH"):
        return ConfigurationError(said)
    return BrokerRefused(said)
