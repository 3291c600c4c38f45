"""Test helpers shipped with the library, for users and for our own suites.

`RedisServer` fixtures live here too so every suite resolves its broker the same way:
EPOCHSTREAM_REDIS_URL, else 127.0.0.1:6379 if it answers, else an embedded server.
"""

from __future__ import annotations

import uuid

import redis


def unique_namespace(prefix: str = "es-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def delete_namespace(client: redis.Redis, namespace: str) -> int:
    """Remove every key of one namespace (never FLUSHALL: the server may be shared)."""
    deleted = 0
    for pattern in (f"{namespace}:*", f"rq:*{namespace}*"):
        batch = list(client.scan_iter(match=pattern, count=1000))
        if batch:
            deleted += client.delete(*batch)
    return deleted
