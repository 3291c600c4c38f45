"""Fixtures for the producer's tests: settings that never touch the test runner's signal handlers, a
Redis server of our own to stop and restart, and a reader of what landed in the streams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from epochstream.broker import ServerProcess, free_port
from epochstream.settings import Settings, settings_env
from schemas.codec import decode
from schemas.keys import PAYLOAD_FIELD, Keys


@pytest.fixture
def settings(redis_url, namespace, tmp_path) -> Settings:
    return Settings(redis_url=redis_url, namespace=namespace, data_dir=tmp_path / "data", partitions=4,
                    spool_dir=tmp_path / "spool", system_interval_s=3600, install_signal_handlers=False,
                    exit_flush_s=2.0, publish_timeout_s=0.5)


def training_env(settings: Settings) -> dict[str, str]:
    """The environment of a training process under test: the test's settings, with the producer's signal
    handlers on (the in-process `settings` turn them off, to leave the test runner's Ctrl-C alone)."""
    return settings_env(settings.model_copy(update={"install_signal_handlers": True}))


@pytest.fixture
def own_server(tmp_path) -> Iterator[ServerProcess]:
    """A persistent server this test may stop and restart on the same port (its data survives)."""
    server = ServerProcess(directory=tmp_path / "own-redis", persistent=True).start()
    yield server
    server.kill()


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


def stream_entries(client: redis.Redis, settings: Settings) -> list[tuple[bytes, object]]:
    """Every (entry id, decoded event) in the namespace's partitions, each partition in stream order."""
    out = []
    for stream in Keys(settings.namespace, settings.partitions).all_streams():
        for entry_id, fields in client.xrange(stream):
            out.append((entry_id, decode(fields[PAYLOAD_FIELD])))
    return out


def run_events(client: redis.Redis, settings: Settings, run_id: str) -> list:
    """One run's events in stream order (a run lives in one partition, so this is its delivery order)."""
    return [event for _, event in stream_entries(client, settings) if event.run_id == run_id]
