"""The dead-letter stream: listing what was rejected, and replaying it after an upgrade.

Each DLQ entry holds the original payload, a human-readable reason, and where it came from. Replay
decodes the payload again with the code running now: what decodes goes back to its run's partition
stream (the drains then store it, exactly once by event_id) and leaves the DLQ; what still fails stays,
with its new reason reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from epochstream.settings import Settings
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.keys import PAYLOAD_FIELD, Keys


@dataclass
class DeadLetter:
    id: str
    stream: str
    entry_id: str
    reason: str
    payload: bytes
    deliveries: int
    at: str


def _text(fields: dict, name: bytes) -> str:
    value = fields.get(name, b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def list_dead_letters(client: redis.Redis, settings: Settings, count: int = 100) -> list[DeadLetter]:
    keys = Keys(settings.namespace, settings.partitions)
    out = []
    for dlq_id, fields in client.xrange(keys.dlq, count=count):
        out.append(DeadLetter(dlq_id.decode(), _text(fields, b"stream"), _text(fields, b"entry_id"),
                              _text(fields, b"reason"), fields.get(b"payload", b""),
                              int(_text(fields, b"deliveries") or 1), _text(fields, b"at")))
    return out


@dataclass
class ReplayResult:
    replayed: int = 0
    still_failing: list[tuple[str, str]] = field(default_factory=list)  # (dlq id, reason now)


def replay(client: redis.Redis, settings: Settings, count: int = 10_000) -> ReplayResult:
    """Re-publish every dead letter that the current code accepts; keep the others."""
    keys = Keys(settings.namespace, settings.partitions)
    result = ReplayResult()
    for letter in list_dead_letters(client, settings, count):
        try:
            event = decode(letter.payload)
        except SchemaError as exc:
            result.still_failing.append((letter.id, str(exc)))
            continue
        # Ordered, not a MULTI (different Cluster slots): a crash between the two re-publishes the event on
        # the next replay, and readers count each event_id once.
        pipe = client.pipeline(transaction=False)
        pipe.xadd(keys.stream_for_run(event.run_id), {PAYLOAD_FIELD: letter.payload})
        pipe.xdel(keys.dlq, letter.id)
        pipe.execute()
        result.replayed += 1
    return result
