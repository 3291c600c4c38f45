"""Trimming below the oldest entry any group still needs, on the shared Redis 7 and on our own Valkey."""

from __future__ import annotations

import pytest
import redis

from epochstream.broker import ServerProcess
from producer.testing import delete_namespace, unique_namespace
from workers.trimming import next_id, oldest_needed, trim_stream


def test_oldest_needed_is_the_minimum_boundary():
    assert oldest_needed([]) is None
    assert next_id("5-9") == "5-10"
    assert oldest_needed([("10-0", None), ("3-1", None)]) == "3-2"
    assert oldest_needed([("10-0", "4-0"), ("9-0", None)]) == "4-0"
    assert oldest_needed([("0-0", None)]) == "0-1"  # a group that read nothing keeps everything


@pytest.fixture(params=["redis7", "valkey"])
def server_client(request, redis_url, tmp_path):
    if request.param == "redis7":
        client, server = redis.Redis.from_url(redis_url), None
    else:
        server = ServerProcess(directory=tmp_path / "valkey").start()
        client = redis.Redis.from_url(server.url)
    namespace = unique_namespace()
    yield client, f"{namespace}:events:{{0}}"
    delete_namespace(client, namespace)
    client.close()
    if server is not None:
        server.stop()


def test_trim_keeps_pending_and_undelivered_entries(server_client):
    client, stream = server_client
    ids = [client.xadd(stream, {b"e": str(i).encode()}) for i in range(10)]
    assert trim_stream(client, stream) == 0  # no group yet: nobody has read anything, nothing may go
    client.xgroup_create(stream, "ingest", id="0")
    client.xgroup_create(stream, "audit", id="0")
    client.xreadgroup("ingest", "c1", {stream: ">"}, count=6)
    client.xack(stream, "ingest", *ids[:3])  # entries 3, 4, 5 stay pending; 6..9 undelivered
    assert trim_stream(client, stream) == 0  # the audit group has read nothing
    client.xreadgroup("audit", "c2", {stream: ">"}, count=10)
    client.xack(stream, "audit", *ids)
    assert trim_stream(client, stream) == 3
    assert [eid for eid, _ in client.xrange(stream)] == ids[3:]
    client.xack(stream, "ingest", *ids[3:6])
    assert trim_stream(client, stream) == 3
    assert [eid for eid, _ in client.xrange(stream)] == ids[6:]  # delivered to audit, not yet to ingest
    client.xreadgroup("ingest", "c1", {stream: ">"})
    client.xack(stream, "ingest", *ids[6:])
    assert trim_stream(client, stream) == 4
    assert client.xlen(stream) == 0
