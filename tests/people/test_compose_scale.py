"""docker-compose.scale.yml, the multi-host variant: checked without a Docker engine (none runs here).

`check_scale` holds every static check on the file (and the Dockerfile it builds); it raises AssertionError.
The file must pass it, and each of a set of broken variants must fail it (a check that cannot fail checks
nothing). Then the topology itself runs for real on loopback: two Redis servers, an S3 server, a database,
two workers, the scheduler and the API, each process with the compose file's environment (hostnames and
ports pointed at loopback) and a data directory of its own, and SQL answered from two more fresh ones.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import redis
import yaml

from tests.people.test_compose import mounts, parse_command, settings_of

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.scale.yml"
PIPELINE = ("worker", "scheduler", "api")  # workers, scheduler, API: brokers, bucket and database
EPOCHSTREAM_SERVICES = (*PIPELINE, "trainer")  # the trainer: a producer, the events broker only
REDIS = {"events-redis": "redis_url", "control-redis": "queue_url"}  # service: the setting that points at it


def load() -> tuple[dict, str]:
    return yaml.safe_load(COMPOSE.read_text()), (ROOT / "Dockerfile").read_text()


def settings_in(service: dict):
    with pytest.MonkeyPatch.context() as mp:
        return settings_of(service, mp)


def command_of(service: dict):
    try:
        return parse_command(service["command"])
    except Exception as exc:  # noqa: BLE001 - typer's vendored click: UsageError (NoSuchOption, ...)
        raise AssertionError(f"{service['command']}: {exc}") from exc


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and tag not in ("", "latest") and "/" not in tag


def after(command: list[str], flag: str) -> str:
    assert flag in command, f"{command}: no {flag}"
    return command[command.index(flag) + 1]


def condition(service: dict, on: str) -> str | None:
    return ((service.get("depends_on") or {}).get(on) or {}).get("condition")


def check_commands(compose: dict) -> None:
    services = compose["services"]
    assert set(EPOCHSTREAM_SERVICES) <= set(services), sorted(services)
    for name in EPOCHSTREAM_SERVICES:
        ctx = command_of(services[name])
        assert ctx.command.name == services[name]["command"][1], name
        assert services[name]["build"] == ".", name
    assert command_of(services["worker"]).params["scheduler"] is False  # the scheduler runs apart, once


def check_infrastructure(compose: dict) -> None:
    services, volumes = compose["services"], compose["volumes"]
    for name in REDIS:
        server = services[name]
        command = server["command"]
        assert server["image"] == "redis:7.4", name
        assert after(command, "--appendonly") == "yes", name
        assert after(command, "--appendfsync") == "everysec", name
        assert after(command, "--save") == "", name
        assert "redis-cli" in server["healthcheck"]["test"], name
        assert mounts(server).get("/data") in volumes, name
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15" and "pg_isready" in postgres["healthcheck"]["test"]
    assert mounts(postgres).get("/var/lib/postgresql/data") in volumes
    minio = services["minio"]
    assert minio["image"].startswith("minio/minio:") and pinned(minio["image"]), minio["image"]
    assert minio["healthcheck"]["test"], "minio: no healthcheck"
    data = after(minio["command"], "server")
    assert mounts(minio).get(data) in volumes, "minio: its data is not in a named volume"
    bucket = services["bucket"]
    assert bucket["image"].startswith("minio/mc:") and pinned(bucket["image"]), bucket["image"]
    assert condition(bucket, "minio") == "service_healthy"
    assert bucket.get("restart") == "no"  # a one-shot: it must exit 0, once
    infra = [mounts(services[n]).values() for n in (*REDIS, "postgres", "minio")]
    assert len({v for m in infra for v in m}) == sum(len(m) for m in infra), "a volume shared by two servers"


def minio_endpoint_and_credentials(compose: dict) -> tuple[tuple[str, int], tuple[str, str]]:
    minio = compose["services"]["minio"]
    command = minio["command"]
    address = after(command, "--address") if "--address" in command else ":9000"
    return ("minio", int(address.rpartition(":")[2])), (
        minio["environment"]["MINIO_ROOT_USER"], minio["environment"]["MINIO_ROOT_PASSWORD"])


def created_bucket(compose: dict) -> str:
    """The bucket the one-shot `bucket` service makes (`mc mb ALIAS/BUCKET`), checked to be on the minio
    service with its root credentials."""
    bucket = compose["services"]["bucket"]
    command = bucket["command"]
    assert command[0] == "mb", command
    alias, _, name = [a for a in command[1:] if not a.startswith("-")][0].partition("/")
    host = urlparse(bucket["environment"][f"MC_HOST_{alias}"])
    endpoint, credentials = minio_endpoint_and_credentials(compose)
    assert (host.hostname, host.port) == endpoint, f"`bucket` talks to {host.netloc}, not to minio"
    assert (host.username, host.password) == credentials, "`bucket`'s credentials are not minio's"
    return name


def check_pipeline(compose: dict) -> None:
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    endpoint, credentials = minio_endpoint_and_credentials(compose)
    bucket = created_bucket(compose)
    seen: dict[str, set] = {"log_url": set(), "read_model_url": set(), "redis_url": set(), "queue_url": set()}
    for name in PIPELINE:
        service = services[name]
        settings, env = settings_in(service), service["environment"]
        log = urlparse(settings.log_url)
        assert (log.scheme, log.hostname) == ("s3", bucket), f"{name}: log at {settings.log_url}, bucket {bucket}"
        database = urlparse(settings.read_model_url)
        assert (database.hostname, database.port) == ("postgres", 5432), name
        assert (database.username, database.password, database.path.lstrip("/")) == (
            postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]), name
        for server, field in REDIS.items():
            url = urlparse(getattr(settings, field) or "")
            assert (url.hostname, url.port or 6379) == (server, 6379), f"{name}: {field} is not {server}"
        aws = urlparse(env.get("AWS_ENDPOINT_URL", ""))
        assert (aws.scheme, aws.hostname, aws.port) == ("http", *endpoint), f"{name}: S3 endpoint {aws.geturl()}"
        assert (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) == credentials, name
        assert env.get("AWS_DEFAULT_REGION"), name
        for field, values in seen.items():
            values.add(getattr(settings, field))
        for server in (*REDIS, "postgres"):
            assert condition(service, server) == "service_healthy", f"{name} -> {server}"
        assert condition(service, "bucket") == "service_completed_successfully", name
    assert all(len(v) == 1 for v in seen.values()), seen
    trainer = services["trainer"]
    url = urlparse(settings_in(trainer).redis_url)
    assert (url.hostname, url.port) == ("events-redis", 6379)
    assert condition(trainer, "events-redis") == "service_healthy"
    assert not {"EPOCHSTREAM_READ_MODEL_URL", "EPOCHSTREAM_LOG_URL"} & set(trainer["environment"])  # a producer
    for field in ("partitions", "namespace"):  # producers and workers must agree on both
        values = {getattr(settings_in(services[n]), field) for n in EPOCHSTREAM_SERVICES}
        assert len(values) == 1, (field, values)
    for name, service in services.items():
        assert set(service.get("depends_on") or {}) <= set(services), name


def check_hosts_share_no_volume(compose: dict) -> None:
    services, owners = compose["services"], {}
    for name in EPOCHSTREAM_SERVICES:
        for volume in mounts(services[name]).values():
            assert volume in compose["volumes"], f"{name}: {volume} is not a named volume"
            assert volume not in owners, f"{volume} shared by {owners[volume]} and {name}"
            owners[volume] = name
    for name in (*REDIS, "postgres", "minio"):
        assert not set(mounts(services[name]).values()) & set(owners), f"{name}'s volume mounted by epochstream"
    for name in ("scheduler", "api"):
        assert str(settings_in(services[name]).data_dir) in mounts(services[name]), f"{name}: data dir not kept"
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # both would break --scale worker=N
    assert not worker.get("volumes")  # replicas: the image's anonymous /data volume, one each


def check_api(compose: dict) -> None:
    api = compose["services"]["api"]
    settings = settings_in(api)
    params = command_of(api).params
    assert params["port"] == settings.api_port and params["host"] == settings.api_host == "0.0.0.0"
    assert [int(p.split(":")[-1]) for p in api["ports"]] == [settings.api_port]
    assert f":{settings.api_port}/healthz" in " ".join(api["healthcheck"]["test"])


def check_dockerfile(dockerfile: str) -> None:
    installs = re.findall(r'pip install "\.\[([^\]]*)\]"', dockerfile)
    assert installs and "s3" in installs[-1].split(","), f"the Dockerfile installs {installs}, not the s3 extra"
    extras = re.search(r"^s3 = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert extras and "s3fs" in extras.group(1)  # what `epochstream sql` needs for a log on S3
    assert 'VOLUME ["/data"]' in dockerfile and "EPOCHSTREAM_DATA_DIR=/data" in dockerfile


def check_scale(compose: dict, dockerfile: str) -> None:
    check_commands(compose)
    check_infrastructure(compose)
    check_pipeline(compose)
    check_hosts_share_no_volume(compose)
    check_api(compose)
    check_dockerfile(dockerfile)


@pytest.fixture(scope="module")
def scale() -> dict:
    return load()[0]


def test_every_service_command_is_a_real_entry_point(scale):
    check_commands(scale)


def test_brokers_database_and_object_store_persist_and_report_health(scale):
    check_infrastructure(scale)


def test_every_pipeline_service_points_at_the_same_bucket_database_and_brokers(scale):
    check_pipeline(scale)
    assert created_bucket(scale) == "epochstream"
    assert settings_in(scale["services"]["worker"]).log_url == "s3://epochstream/log"


def test_hosts_share_no_volume_and_workers_scale(scale):
    check_hosts_share_no_volume(scale)


def test_api_port_agrees_with_settings_flags_and_mapping(scale):
    check_api(scale)


def test_the_dockerfile_installs_the_s3_extra():
    check_dockerfile(load()[1])


def _env(compose: dict, service: str, **changes: str | None) -> None:
    """Change one service's environment only (the file's anchors make the services share one mapping)."""
    env = {**compose["services"][service]["environment"], **changes}
    compose["services"][service]["environment"] = {k: v for k, v in env.items() if v is not None}


def _set(compose: dict, service: str, **changes) -> None:
    compose["services"][service] = {**compose["services"][service], **changes}


def _depends(compose: dict, service: str, **changes: str | None) -> None:
    depends = {k: dict(v) for k, v in compose["services"][service]["depends_on"].items()}
    for name, condition in changes.items():
        if condition is None:
            depends.pop(name.replace("_", "-"), None)
        else:
            depends[name.replace("_", "-")] = {"condition": condition}
    _set(compose, service, depends_on=depends)


BROKEN = {
    "the bucket made is not the log's": lambda c, d: _set(c, "bucket", command=["mb", "--ignore-existing",
                                                                                "minio/elsewhere"]),
    "one host's log in another bucket": lambda c, d: _env(c, "api", EPOCHSTREAM_LOG_URL="s3://other/log"),
    "one host's log under another prefix": lambda c, d: _env(c, "worker", EPOCHSTREAM_LOG_URL="s3://epochstream/x"),
    "a host's S3 secret is not minio's": lambda c, d: _env(c, "scheduler", AWS_SECRET_ACCESS_KEY="wrong"),
    "minio's password changed alone": lambda c, d: _env(c, "minio", MINIO_ROOT_PASSWORD="another-one"),
    "a host's S3 endpoint is not minio": lambda c, d: _env(c, "worker", AWS_ENDPOINT_URL="http://s3:9000"),
    "no region": lambda c, d: _env(c, "api", AWS_DEFAULT_REGION=None),
    "the database password disagrees": lambda c, d: _env(
        c, "scheduler", EPOCHSTREAM_READ_MODEL_URL="postgresql://epochstream:nope@postgres:5432/epochstream"),
    "the read model in SQLite on one host": lambda c, d: _env(c, "api", EPOCHSTREAM_READ_MODEL_URL=""),
    "the queues on the events broker": lambda c, d: _env(c, "worker",
                                                         EPOCHSTREAM_QUEUE_URL="redis://events-redis:6379/0"),
    "no control broker": lambda c, d: _env(c, "scheduler", EPOCHSTREAM_QUEUE_URL=None),
    "the trainer on the control broker": lambda c, d: _env(c, "trainer",
                                                           EPOCHSTREAM_REDIS_URL="redis://control-redis:6379/0"),
    "partitions differ": lambda c, d: _env(c, "trainer", EPOCHSTREAM_PARTITIONS="16"),
    "namespaces differ": lambda c, d: _env(c, "api", EPOCHSTREAM_NAMESPACE="other"),
    "a shared volume": lambda c, d: _set(c, "api", volumes=["scheduler-data:/data"]),
    "workers on a named volume": lambda c, d: _set(c, "worker", volumes=["api-data:/data"]),
    "a host on minio's volume": lambda c, d: _set(c, "scheduler", volumes=["minio-data:/data"]),
    "the api's data dir not in its volume": lambda c, d: _set(c, "api", volumes=["api-data:/elsewhere"]),
    "no wait for the bucket": lambda c, d: _depends(c, "worker", bucket=None),
    "the bucket only started": lambda c, d: _depends(c, "api", bucket="service_started"),
    "no wait for postgres": lambda c, d: _depends(c, "scheduler", postgres=None),
    "redis only started": lambda c, d: _depends(c, "worker", control_redis="service_started"),
    "a dependency that is not a service": lambda c, d: _depends(c, "trainer", redis="service_healthy"),
    "a worker with a fixed name": lambda c, d: _set(c, "worker", container_name="worker"),
    "a worker with a port": lambda c, d: _set(c, "worker", ports=["9000:9000"]),
    "a worker running the scheduler too": lambda c, d: _set(c, "worker", command=["epochstream", "worker"]),
    "a command that does not exist": lambda c, d: _set(c, "scheduler", command=["epochstream", "schedule"]),
    "an option that does not exist": lambda c, d: _set(c, "worker", command=["epochstream", "worker",
                                                                             "--no-scheduler", "--replicas", "4"]),
    "the api published on another port": lambda c, d: _set(c, "api", ports=["8000:8080"]),
    "minio unpinned": lambda c, d: _set(c, "minio", image="minio/minio:latest"),
    "mc unpinned": lambda c, d: _set(c, "bucket", image="minio/mc"),
    "redis without the append-only file": lambda c, d: _set(c, "events-redis", command=["redis-server"]),
    "the bucket made with other credentials": lambda c, d: _env(c, "bucket",
                                                                MC_HOST_minio="http://root:secret12@minio:9000"),
    "the Dockerfile without the s3 extra": lambda c, d: d.replace('".[gpu,s3]"', '".[gpu]"'),
}


@pytest.mark.parametrize("why", sorted(BROKEN))
def test_a_broken_variant_fails_the_checks(why):
    compose, dockerfile = load()
    check_scale(copy.deepcopy(compose), dockerfile)  # the file as it is passes
    broken = copy.deepcopy(compose)
    changed = BROKEN[why](broken, dockerfile)
    if isinstance(changed, str):
        assert changed != dockerfile
        dockerfile = changed
    else:
        assert broken != compose, "the variant changed nothing"
    with pytest.raises(AssertionError):
        check_scale(broken, dockerfile)


# --- The topology, for real, on loopback -------------------------------------------------------------------

RUNS, EPOCHS = 8, 20
CLI = [sys.executable, "-c", "from epochstream.cli import main; main()"]


class Loopback:
    """Where the compose file's hostnames are on this machine, and a rewrite of a service's environment."""

    def __init__(self, compose: dict, ports: dict[str, int], s3_endpoint: str, database_url: str):
        self.compose, self.ports, self.s3_endpoint, self.database_url = compose, ports, s3_endpoint, database_url

    def env(self, name: str, host_dir: Path) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("EPOCHSTREAM_", "AWS_"))}
        out = {}
        for key, value in self.compose["services"][name]["environment"].items():
            value = str(value)
            for server, port in self.ports.items():
                value = value.replace(f"//{server}:6379/", f"//127.0.0.1:{port}/")
            if key == "AWS_ENDPOINT_URL":
                value = self.s3_endpoint
            if key == "EPOCHSTREAM_READ_MODEL_URL":
                value = self.database_url
            out[key] = value
        assert set(out) == set(self.compose["services"][name]["environment"])
        # The image's ENV (Dockerfile) and the host's own directories: the data dir and the spool.
        out.update(EPOCHSTREAM_DATA_DIR=str(host_dir / "data"), EPOCHSTREAM_SPOOL_DIR=str(host_dir / "spool"))
        return {**base, **out, "COLUMNS": "200", "NO_COLOR": "1"}


def _start_redis(command: list[str], directory: Path) -> tuple[subprocess.Popen, int]:
    from epochstream.broker import free_port

    port = free_port()
    directory.mkdir(parents=True)
    proc = subprocess.Popen([*command, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=0.5).ping():
                return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server on port {port} did not answer")


def _until(condition, timeout: float, what: str, procs: list[subprocess.Popen]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"exited while waiting for {what}: {dead}"
        answer = condition()
        if answer:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.slow
def test_the_scale_out_topology_runs_on_loopback(tmp_path):
    import shutil

    from tests.integration.helpers import api_view
    from tests.postgres import fresh_database
    from tests.processes import stop_processes
    from tests.s3 import S3Server, require_moto
    from tests.workers.publisher_process import SYSTEM_EVERY

    require_moto()
    if not shutil.which("redis-server"):
        pytest.skip("no redis-server on PATH")
    compose = load()[0]
    services = compose["services"]
    servers: list[subprocess.Popen] = []
    procs: list[subprocess.Popen] = []
    one_shots: list[subprocess.Popen] = []
    logs = []
    s3 = S3Server()
    try:
        ports = {}
        for name in REDIS:
            proc, ports[name] = _start_redis(services[name]["command"], tmp_path / name)
            servers.append(proc)
        s3.start()
        bucket = created_bucket(compose)
        if bucket not in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}:
            s3.client().create_bucket(Bucket=bucket)  # what the `bucket` service does
        with fresh_database() as database_url:
            hosts = Loopback(compose, ports, s3.endpoint, database_url)

            def start(name: str, host: str, argv: list[str]) -> subprocess.Popen:
                log = open(tmp_path / f"{host}.log", "w")  # noqa: SIM115 - closed in finally
                logs.append(log)
                proc = subprocess.Popen([*CLI, *argv[1:]], env=hosts.env(name, tmp_path / host), cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT)
                procs.append(proc)
                return proc

            from epochstream.broker import free_port

            api_port = free_port()
            api_argv = [{"0.0.0.0": "127.0.0.1", "8000": str(api_port)}.get(a, a) for a in services["api"]["command"]]
            for i in range(2):
                start("worker", f"worker-{i}", services["worker"]["command"])
            start("scheduler", "scheduler", services["scheduler"]["command"])
            start("api", "api", api_argv)
            base_url = f"http://127.0.0.1:{api_port}"

            def healthy() -> bool:
                try:
                    return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            _until(healthy, 30, "the API's /healthz", procs)
            trainer_env = hosts.env("trainer", tmp_path / "trainer")
            publishers = [subprocess.Popen([sys.executable, str(ROOT / "tests/workers/publisher_process.py"), str(i),
                                            str(EPOCHS)], env=trainer_env, cwd=ROOT) for i in range(RUNS)]
            one_shots += publishers
            assert [p.wait(timeout=60) for p in publishers] == [0] * RUNS

            expected = {f"p{i}" for i in range(RUNS)}
            per_run = 1 + EPOCHS + EPOCHS // SYSTEM_EVERY + 1
            with httpx.Client(base_url=base_url, timeout=10) as http:
                def all_in() -> bool:
                    body = http.get("/runs", params={"limit": 100}).json()
                    return len(body["runs"]) == RUNS and all(
                        r["status"] == "completed" and r["epochs"] == EPOCHS for r in body["runs"])

                _until(all_in, 60, f"{RUNS} completed runs of {EPOCHS} epochs in the API", procs)
                seen = api_view(http, expected)
            assert all(s.status == "completed" and s.events == per_run and s.epoch_numbers == tuple(range(EPOCHS))
                       for s in seen.values()), seen

            # Any host answers SQL, from a data directory of its own that held nothing before.
            line = ("SELECT 'n=' || count(*) || ' ids=' || count(DISTINCT event_id) || ' runs=' "
                    "|| count(DISTINCT run_id) AS answer FROM epochs")
            sql = [subprocess.Popen([*CLI, "sql", line], env=hosts.env("api", tmp_path / host), cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for host in ("analyst-1", "analyst-2")]
            one_shots += sql
            for analyst in sql:
                out, err = analyst.communicate(timeout=60)
                assert analyst.returncode == 0, err[-2000:]
                assert f"n={RUNS * EPOCHS} ids={RUNS * EPOCHS} runs={RUNS}" in out, out
            assert all(p.poll() is None for p in procs)  # nothing fell over on the way
            for host in ("worker-0", "worker-1", "scheduler", "api", "analyst-1"):
                assert not (tmp_path / host / "data" / "log").exists(), host  # the log is in the bucket only
            assert s3.keys(bucket, "log/epoch/")
            stop_processes(procs, grace_s=10)
    finally:
        stop_processes(procs + one_shots, grace_s=10)
        stop_processes(servers, grace_s=5)
        s3.stop()
        for log in logs:
            log.close()
