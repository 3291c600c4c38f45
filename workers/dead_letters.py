"""The dead-letter stream: the one place that writes, lists and replays what was rejected.

Each DLQ entry holds the original payload, a human-readable reason (always the entry's own fault: it cannot
be decoded, breaks the contract, cannot be stored, or killed the worker each time it was processed alone;
never a full disk or a broker outage), and where it came from. The same letters are kept in the log
(`log/dead_letters/`) for SQL. Replay
decodes the payload again with the code running now: what decodes goes back to its run's partition
stream (the drains then store it, exactly once by event_id) and leaves the DLQ; what still fails stays,
with its new reason reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import redis

from epochstream.layout import DataLayout
from epochstream.settings import Settings
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.keys import PAYLOAD_FIELD, Keys
from workers.log_schema import DEAD_LETTERS, dead_letter_table
from workers.log_store import log_store


@dataclass
class DeadLetter:
    """One rejected stream entry. `id` is its id in the DLQ stream (empty until it is there)."""

    stream: str
    entry_id: str
    reason: str
    payload: bytes
    deliveries: int
    at: str
    id: str = ""

    def fields(self) -> dict[bytes, bytes]:
        return {b"payload": self.payload, b"reason": self.reason.encode(), b"stream": self.stream.encode(),
                b"entry_id": self.entry_id.encode(), b"deliveries": str(self.deliveries).encode(),
                b"at": self.at.encode()}

    @classmethod
    def from_fields(cls, dlq_id: str, fields: dict) -> DeadLetter:
        return cls(_text(fields, b"stream"), _text(fields, b"entry_id"), _text(fields, b"reason"),
                   fields.get(b"payload", b""), int(_text(fields, b"deliveries") or 1), _text(fields, b"at"), dlq_id)

    def row(self, partition: int, at: datetime) -> dict:
        """Its row in the log's `dead_letters` table."""
        return {"stream": self.stream, "stream_id": self.entry_id, "partition": partition, "reason": self.reason,
                "payload": self.payload, "deliveries": self.deliveries, "dead_lettered_at": at}


def _text(fields: dict, name: bytes) -> str:
    value = fields.get(name, b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def write_to_log(letters: list[DeadLetter], partition: int, at: datetime, layout: DataLayout, name: str) -> None:
    """The letters as one `dead_letters` segment `name` (before they are XADDed: the log never misses one)."""
    log_store(layout).write_parquet(dead_letter_table([letter.row(partition, at) for letter in letters]),
                                    layout.log_dir(DEAD_LETTERS) / name)


def add(pipeline, keys: Keys, letters: list[DeadLetter]) -> None:
    """XADD the letters to the DLQ stream in the caller's pipeline (the drain's ack round trip)."""
    for letter in letters:
        pipeline.xadd(keys.dlq, letter.fields())


def list_dead_letters(client: redis.Redis, settings: Settings, count: int = 100) -> list[DeadLetter]:
    keys = Keys(settings.namespace, settings.partitions)
    return [DeadLetter.from_fields(dlq_id.decode(), fields) for dlq_id, fields in client.xrange(keys.dlq, count=count)]


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
