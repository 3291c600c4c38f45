"""The stack's broker: the one it is given (EPOCHSTREAM_REDIS_URL) or the embedded one it starts, and
what the stack checks and cleans up there.

- A given Redis is checked before anything starts: it answers, it agrees on the partition count
  (`epochstream.agreement`), and it keeps what it is sent (AOF or RDB); without either, everything
  published but not yet drained is lost when it restarts, so the stack says so (it does not refuse: a
  throw-away Redis is a fair choice for a demo).
- The embedded broker keeps its append-only data under <data_dir>/broker, so a restart loses nothing; one
  left running by an `up` that was killed is shut down first (two servers must never write one file).
- `release_drain_locks`: at the final drain, locks left by killed processes are deleted (here only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis

from epochstream.agreement import PartitionMismatch, agree
from epochstream.broker import ServerProcess, announce, announced_url, answers, connect, resolve_queue_url
from epochstream.broker_errors import broker_error
from epochstream.errors import BrokerUnavailable
from epochstream.settings import Settings
from epochstream.stack.errors import StackFailed
from schemas.keys import Keys

BROKER_DIR = "broker"


def masked(url: str) -> str:
    """A Redis URL fit to print: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def persistence_warning(client: redis.Redis) -> str | None:
    """What to tell an operator whose Redis keeps nothing on disk (neither AOF nor RDB snapshots), or None.
    A server that does not let us ask (CONFIG renamed or disabled, as managed services do) is given the
    benefit of the doubt: None."""
    try:
        aof = client.config_get("appendonly").get("appendonly")
        rdb = client.config_get("save").get("save")
    except redis.ResponseError:
        return None
    if aof == "yes" or (rdb or "").strip():
        return None
    return ("this Redis keeps nothing on disk (appendonly no, save \"\"): a restart loses every event published "
            "but not yet drained, although producers were told it was delivered. Turn on persistence "
            "(appendonly yes), or unset EPOCHSTREAM_REDIS_URL to use the embedded broker, which has it")


def check_given_broker(settings: Settings, url: str, say: Callable[[str], None]) -> None:
    """Before anything starts on a given Redis: it answers, agrees on the partition count, and keeps data."""
    resolve_queue_url(settings)  # a cluster needs EPOCHSTREAM_QUEUE_URL: say so before starting anything
    if not answers(url, timeout=2.0):
        raise BrokerUnavailable(f"Redis at {masked(url)} does not answer: start it, or unset "
                                f"EPOCHSTREAM_REDIS_URL to use the embedded broker")
    client = connect(url, socket_timeout=5.0)
    try:
        agree_or_fail(client, settings)
        warning = persistence_warning(client)
    except redis.RedisError as exc:  # e.g. a user without the permissions workers need
        raise broker_error(exc) from None
    finally:
        client.close()
    if warning:
        say(f"warning    {warning}")


def agree_or_fail(client: redis.Redis, settings: Settings) -> None:
    try:
        agree(client, Keys(settings.namespace, settings.partitions))
    except PartitionMismatch as exc:
        raise StackFailed(f"{exc}; nothing was started") from None


def start_embedded_broker(settings: Settings, say: Callable[[str], None]) -> ServerProcess:
    directory = settings.data_dir / BROKER_DIR
    stop_orphaned_broker(settings, say)
    server = ServerProcess(directory=directory, persistent=True).start()
    announce(settings, server.url)
    client = connect(server.url, socket_timeout=5.0)
    try:
        agree_or_fail(client, settings)
    except BaseException:
        server.stop()
        raise
    finally:
        client.close()
    return server


def stop_orphaned_broker(settings: Settings, say: Callable[[str], None]) -> None:
    """A broker announced here while we hold the lock was left by an `up` that was killed: its files
    are ours now. Two servers must never write one append-only file, so shut it down (it saves) first."""
    url = announced_url(settings)
    if url is None:
        return
    try:
        redis.Redis.from_url(url, socket_timeout=10).shutdown()
    except redis.ConnectionError:
        pass  # it closes the connection as it exits: the expected answer
    except redis.RedisError as exc:
        raise StackFailed(f"a broker left by an earlier `up` still runs at {url} and did not stop: {exc}; "
                          f"stop it, then start again") from None
    deadline = time.monotonic() + 10
    while answers(url, timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.1)
    say(f"stopped the broker an earlier, killed `up` left running at {url}")


def release_drain_locks(settings: Settings, broker_url: str) -> None:
    """Our own broker, every worker stopped: a lock left by a process killed between taking it and
    queueing its job would hold its partition back from the final drain until the lock's TTL ends."""
    from workers.locks import release_all

    keys = Keys(settings.namespace, settings.partitions)
    client = connect(broker_url)
    try:
        release_all(client, [keys.drain_lock(p) for p in range(settings.partitions)])
    finally:
        client.close()

