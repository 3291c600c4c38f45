"""The drain job: read one partition with the consumer group, write, project, and only then XACK."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from epochstream.broker import connect
from epochstream.layout import DataLayout, atomic_write_parquet
from epochstream.settings import Settings
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.keys import PAYLOAD_FIELD, Keys
from workers.log_schema import tables_by_type
from workers.projections import update_runs


@dataclass
class DrainResult:
    partition: int
    stored: int = 0
    dead_lettered: int = 0


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def drain_partition(settings_json: str, redis_url: str, partition: int) -> dict:
    """RQ job entry point: arguments are plain values so any worker host can run it."""
    settings = Settings.model_validate_json(settings_json)
    client = connect(redis_url)
    try:
        return drain(client, settings, partition).__dict__
    finally:
        client.close()


def drain(client: redis.Redis, settings: Settings, partition: int) -> DrainResult:
    keys = Keys(settings.namespace, settings.partitions)
    layout = DataLayout(settings.data_dir)
    stream, group = keys.stream(partition), keys.group
    ensure_group(client, stream, group)
    result = DrainResult(partition)
    consumer = consumer_name()
    while True:
        reply = client.xreadgroup(group, consumer, {stream: ">"}, count=settings.drain_batch)
        entries = reply[0][1] if reply else []
        if not entries:
            return result
        good, bad = [], []
        for entry_id, fields in entries:
            sid = entry_id.decode()
            payload = fields.get(PAYLOAD_FIELD, b"")
            try:
                good.append((sid, decode(payload)))
            except SchemaError as exc:
                bad.append((sid, payload, str(exc)))
        now = datetime.now(UTC)
        tables = tables_by_type(good, now)
        stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
        for event_type, table in tables.items():
            name = f"seg-{stamp}-p{partition}-{uuid.uuid4().hex[:8]}.parquet"
            atomic_write_parquet(table, layout.log_dir(event_type) / name)
        update_runs(layout, tables)
        pipe = client.pipeline(transaction=False)
        for sid, payload, reason in bad:
            pipe.xadd(keys.dlq, {b"payload": payload, b"reason": reason, b"stream": stream, b"entry_id": sid})
        pipe.xack(stream, group, *[entry_id for entry_id, _ in entries])
        pipe.execute()
        result.stored += len(good)
        result.dead_lettered += len(bad)
