"""Shared fixtures: a real Redis for every test, isolated by a unique key namespace."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from epochstream.broker import free_port, test_redis_url
from epochstream.settings import Settings, settings_env
from producer.testing import delete_namespace, unique_namespace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    url, server = test_redis_url(tmp_path_factory.mktemp("embedded-redis"))
    yield url
    if server is not None:
        server.stop()


@pytest.fixture
def namespace(redis_url) -> Iterator[str]:
    name = unique_namespace()
    yield name
    client = redis.Redis.from_url(redis_url)
    delete_namespace(client, name)
    client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own (`tests.postgres`), dropped afterwards."""
    from tests.postgres import fresh_database

    with fresh_database() as url:
        yield url


READ_MODELS = ["sqlite", "postgresql"]


def with_read_model(request, settings: Settings, kind: str | None = None) -> Settings:
    """`settings` on the read model `kind` (default: the param of a module's `settings` override with
    params=READ_MODELS, so that its tests run on both stores)."""
    if (request.param if kind is None else kind) == "sqlite":
        return settings
    return settings.model_copy(update={"read_model_url": request.getfixturevalue("postgres_url")})


@pytest.fixture
def pg_settings(settings, postgres_url) -> Settings:
    """`settings` with the read model in PostgreSQL."""
    return settings.model_copy(update={"read_model_url": postgres_url})


@pytest.fixture(scope="session")
def s3_server() -> Iterator:
    """moto's S3 server on a loopback port, for the whole session (`tests.s3`); skips where moto is missing."""
    from tests.s3 import S3Server, require_moto

    require_moto()
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_settings(settings, s3_server, monkeypatch) -> Settings:
    """`settings` with the log in a fresh bucket of the session's S3 server; the AWS variables point there
    (for this process and, through `settings_env`, its children)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return settings.model_copy(update={"log_url": f"s3://{s3_server.fresh_bucket()}/log"})


@pytest.fixture
def redis_client(redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url, namespace, tmp_path) -> Settings:
    return Settings(redis_url=redis_url, namespace=namespace, data_dir=tmp_path / "data", partitions=4,
                    spool_dir=tmp_path / "spool", system_interval_s=3600)


class ApiServer:
    """The API in a real uvicorn process on a loopback port."""

    def __init__(self, settings: Settings):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "query_api.app:app_from_env",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=settings_env(settings), cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API process exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("API did not come up within 30s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def api_server(settings) -> Iterator[ApiServer]:
    server = ApiServer(settings)
    yield server
    server.stop()


def pytest_sessionfinish(session, exitstatus):
    # A run that executed no test must fail loudly, never pass silently.
    if exitstatus == 0 and session.testscollected == 0:
        session.exitstatus = 1
