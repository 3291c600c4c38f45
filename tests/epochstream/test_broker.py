"""Broker resolution: explicit URL, the announced broker of a running stack, or an embedded server."""

from __future__ import annotations

import pytest
import redis

from epochstream.broker import ServerProcess, announce, answers, free_port, resolve_url, test_redis_url
from epochstream.errors import BrokerUnavailable
from epochstream.settings import Settings

test_redis_url.__test__ = False  # a fixture helper that pytest must not collect


def test_explicit_url_wins(tmp_path):
    settings = Settings(redis_url="redis://example.invalid:1/0", data_dir=tmp_path)
    assert resolve_url(settings) == "redis://example.invalid:1/0"


def test_no_broker_says_what_to_do(tmp_path):
    with pytest.raises(BrokerUnavailable, match="EPOCHSTREAM_REDIS_URL.*epochstream up"):
        resolve_url(Settings(data_dir=tmp_path))


def test_announced_broker_is_found_only_while_it_answers(tmp_path):
    server = ServerProcess(directory=tmp_path / "broker", persistent=True).start()
    settings = Settings(data_dir=tmp_path)
    try:
        announce(settings, server.url)
        assert resolve_url(settings) == server.url
    finally:
        server.stop()
    with pytest.raises(BrokerUnavailable):
        resolve_url(settings)


def test_embedded_server_when_nothing_answers(tmp_path, monkeypatch):
    monkeypatch.delenv("EPOCHSTREAM_REDIS_URL", raising=False)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    url, server = test_redis_url(tmp_path, local_url=dead)
    try:
        assert server is not None and url == server.url
        client = redis.Redis.from_url(url)
        client.xadd("s", {"k": "v"})
        client.xgroup_create("s", "g", id="0")
        assert client.xreadgroup("g", "c", {"s": ">"})[0][1][0][1] == {b"k": b"v"}
        client.close()
    finally:
        server.stop()
    assert not answers(url)


def test_persistent_server_keeps_data_across_restart(tmp_path):
    server = ServerProcess(directory=tmp_path / "b", persistent=True).start()
    client = redis.Redis.from_url(server.url)
    client.xadd("events", {"e": "1"})
    client.close()
    server.stop()
    again = ServerProcess(directory=tmp_path / "b", port=server.port, persistent=True).start()
    try:
        assert redis.Redis.from_url(again.url).xlen("events") == 1
    finally:
        again.stop()
