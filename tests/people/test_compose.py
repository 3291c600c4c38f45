"""docker-compose.yml: no Docker engine runs here, so check what can be checked without one.

Every epochstream service's command must parse as a real `epochstream` command with real options, and its
volumes, ports and environment must agree with the settings those processes will build.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import typer.main
import yaml

from epochstream.cli import app
from epochstream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EPOCHSTREAM_SERVICES = ("worker", "scheduler", "api", "trainer")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_of(service: dict, monkeypatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("EPOCHSTREAM_")]:
        monkeypatch.delenv(key)
    for key, value in (service.get("environment") or {}).items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def parse_command(argv: list[str]):
    """Resolve `epochstream SUB ARGS` against the real typer app; a bad name or option raises."""
    assert argv[0] == "epochstream", argv
    group = typer.main.get_command(app)
    sub = group.commands.get(argv[1])
    assert sub is not None, f"`epochstream {argv[1]}` is not a command"
    return sub.make_context(argv[1], list(argv[2:]))


def mounts(service: dict) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes") or []}


def test_every_service_command_is_a_real_entry_point(compose):
    services = compose["services"]
    assert set(EPOCHSTREAM_SERVICES) <= set(services)
    for name in EPOCHSTREAM_SERVICES:
        ctx = parse_command(services[name]["command"])
        assert ctx.command.name == services[name]["command"][1]
    assert parse_command(services["worker"]["command"]).params["scheduler"] is False  # the scheduler runs apart


def test_a_bad_command_would_be_caught():
    with pytest.raises(AssertionError):
        parse_command(["epochstream", "no-such-command"])
    with pytest.raises(Exception, match="No such option"):
        parse_command(["epochstream", "worker", "--no-such-option"])


def test_redis_persists_and_reports_health(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert mounts(redis).get("/data") in compose["volumes"]


def test_every_service_reaches_the_redis_service(compose, monkeypatch):
    for name in EPOCHSTREAM_SERVICES:
        service = compose["services"][name]
        url = urlparse(settings_of(service, monkeypatch).redis_url)
        assert (url.hostname, url.port or 6379) == ("redis", 6379), name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_pipeline_services_share_the_data_directory(compose, monkeypatch):
    volumes = set()
    for name in ("worker", "scheduler", "api"):
        service = compose["services"][name]
        data_dir = str(settings_of(service, monkeypatch).data_dir)
        assert data_dir in mounts(service), f"{name}: {data_dir} is not a volume"
        volumes.add(mounts(service)[data_dir])
    assert len(volumes) == 1 and volumes <= set(compose["volumes"])
    partitions = {settings_of(compose["services"][n], monkeypatch).partitions for n in EPOCHSTREAM_SERVICES}
    namespaces = {settings_of(compose["services"][n], monkeypatch).namespace for n in EPOCHSTREAM_SERVICES}
    assert len(partitions) == 1 and len(namespaces) == 1  # producer and workers must agree on both


def test_api_port_agrees_with_settings_flags_and_mapping(compose, monkeypatch):
    api = compose["services"]["api"]
    settings = settings_of(api, monkeypatch)
    params = parse_command(api["command"]).params
    assert params["port"] == settings.api_port and params["host"] == settings.api_host == "0.0.0.0"
    published = [p.split(":") for p in api["ports"]]
    assert [int(container) for _, container in published] == [settings.api_port]


def test_workers_scale(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # both would break --scale worker=N


def test_dockerfile_builds_what_compose_runs(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in EPOCHSTREAM_SERVICES:
        assert compose["services"][name]["build"] == "."
    for package in ("schemas", "producer", "workers", "query_api", "epochstream"):
        assert f"COPY {package} {package}" in dockerfile
    assert "EXPOSE 8000" in dockerfile and "EPOCHSTREAM_DATA_DIR=/data" in dockerfile


def _merged(base: dict, override: dict) -> dict:
    """Compose's merge of an override file, for what these files use: mappings merge key by key (a service's
    `environment` and `depends_on` included), anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


@pytest.fixture(scope="module")
def compose_postgres(compose) -> dict:
    override = yaml.safe_load((ROOT / "docker-compose.postgres.yml").read_text())
    return _merged(compose, override)


def test_the_postgresql_variant_points_every_pipeline_service_at_one_database(compose_postgres, monkeypatch):
    services = compose_postgres["services"]
    postgres = services["postgres"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert mounts(postgres)["/var/lib/postgresql/data"] in compose_postgres["volumes"]
    urls = set()
    for name in ("worker", "scheduler", "api"):
        service = services[name]
        settings = settings_of(service, monkeypatch)  # the setting parses (only empty or postgresql:// does)
        url = urlparse(settings.read_model_url)
        assert (url.hostname, url.port) == ("postgres", 5432), name
        assert (url.username, url.password, url.path.lstrip("/")) == (
            postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_PASSWORD"],
            postgres["environment"]["POSTGRES_DB"]), name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name  # kept from the base
        assert settings.redis_url == "redis://redis:6379/0" and str(settings.data_dir) == "/data", name
        urls.add(settings.read_model_url)
    assert len(urls) == 1
    parse_command(services["worker"]["command"])  # the base's commands are unchanged
    # producers need no database
    assert "EPOCHSTREAM_READ_MODEL_URL" not in (services["trainer"].get("environment") or {})
