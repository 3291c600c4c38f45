"""Cluster URLs, the queue broker's rules, the figures' arithmetic, and the README's cluster ACL, for real."""

from __future__ import annotations

import pytest
import redis

from epochstream.broker import cluster_options, connect, is_cluster_url, mask, resolve_queue_url
from epochstream.drain_metrics import BUCKETS_S, parse
from epochstream.errors import ConfigurationError
from epochstream.pipeline_status import partition_status
from epochstream.settings import Settings
from producer import Publisher, start_run
from schemas.keys import Keys
from tests.people.test_docs import example


def test_a_cluster_url_names_every_startup_node_and_its_credentials():
    options = cluster_options("rediss+cluster://app:p%40ss@a.example:7000,b.example:7001/?socket_timeout=1.5")
    assert [(n.host, n.port) for n in options["startup_nodes"]] == [("a.example", 7000), ("b.example", 7001)]
    assert (options["username"], options["password"], options["ssl"]) == ("app", "p@ss", True)
    assert options["socket_timeout"] == 1.5
    assert is_cluster_url("redis+cluster://h:1") and not is_cluster_url("redis://h:1/0")
    assert mask("redis+cluster://app:secret@h:1") == "redis+cluster://app:***@h:1"


@pytest.mark.parametrize("url", ["redis+cluster://", "redis+cluster://h:notaport", "redis+cluster://h:1/3",
                                 "redis+cluster://h:1?bogus=1"])
def test_a_bad_cluster_url_is_a_clear_configuration_error(url):
    with pytest.raises(ConfigurationError, match="Redis Cluster URL"):
        cluster_options(url)


def test_the_queue_broker_defaults_to_a_standalone_streams_broker_and_is_required_with_a_cluster(tmp_path):
    plain = Settings(redis_url="redis://h:6379/0", data_dir=tmp_path)
    assert resolve_queue_url(plain) == "redis://h:6379/0"
    with pytest.raises(ConfigurationError, match="EPOCHSTREAM_QUEUE_URL=redis://"):
        resolve_queue_url(Settings(redis_url="redis+cluster://h:7000", data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="needs a standalone Redis|need a standalone Redis"):
        resolve_queue_url(Settings(redis_url="redis+cluster://h:7000", queue_url="redis+cluster://c:1",
                                   data_dir=tmp_path))
    given = Settings(redis_url="redis+cluster://h:7000", queue_url="redis://control:6379/0", data_dir=tmp_path)
    assert resolve_queue_url(given) == "redis://control:6379/0"


def test_ingest_lag_is_the_age_of_the_oldest_entry_not_done():
    now = 10_000
    caught_up = partition_status(0, 5, {"pending": 0, "min": None}, [], "9000-0", now)
    assert (caught_up.ingest_lag_s, caught_up.oldest_pending_age_s, caught_up.newest_applied_age_s) == (0.0, None, 1.0)
    waiting = partition_status(1, 5, None, [(b"7000-0", {})], "0-0", now)
    assert (waiting.ingest_lag_s, waiting.newest_applied_age_s) == (3.0, None)
    pending = partition_status(2, 5, {"pending": 2, "min": b"4000-1"}, [(b"8000-0", {})], "3000-0", now)
    assert (pending.ingest_lag_s, pending.oldest_pending_age_s, pending.pending) == (6.0, 6.0, 2)


def test_batch_durations_add_up_into_cumulative_buckets():
    fields = {b"le=0.01": b"2", b"le=1.0": b"1", b"le=+Inf": b"1", b"count": b"4", b"sum": b"41.5"}
    durations = parse(fields)
    assert durations.count == 4 and durations.sum == 41.5
    cumulative = dict(durations.buckets)
    assert cumulative[0.005] == 0 and cumulative[0.01] == 2 and cumulative[1.0] == 3 and cumulative[float("inf")] == 4
    assert len(durations.buckets) == len(BUCKETS_S) + 1


def test_the_readme_producer_acl_works_on_every_node_of_a_cluster(cluster, cluster_settings):
    settings = cluster_settings
    rule = [r.replace("epochstream:", f"{settings.namespace}:") for r in example("producer-acl-cluster").split()]
    assert rule[:3] == ["ACL", "SETUSER", "producer"]
    for node in cluster.nodes:
        redis.Redis(port=node.port).execute_command(*rule)
    password = next(r[1:] for r in rule if r.startswith(">"))
    producer_url = "redis+cluster://" + ",".join(f"producer:{password}@127.0.0.1:{n.port}" for n in cluster.nodes[:1])
    publisher = Publisher(settings.model_copy(update={"redis_url": producer_url}))
    runs = []
    for i in range(6):  # several runs: their partitions spread over the shards
        with start_run(project="acl", run_id=f"acl{i}", publisher=publisher) as run:
            run.log_epoch(0, {"train/loss": 1.0}, samples=1)
        runs.append(run.run_id)
    assert publisher.flush(10) and publisher.dropped == 0
    publisher.close()
    admin = connect(cluster.url)
    keys = Keys(settings.namespace, settings.partitions)
    assert sum(admin.xlen(s) for s in keys.all_streams()) == 3 * len(runs)
    as_producer = connect(producer_url)
    stream = next(s for s in keys.all_streams() if admin.xlen(s))
    for forbidden in (lambda: as_producer.xrange(stream), lambda: as_producer.delete(stream),
                      lambda: as_producer.set("elsewhere", 1)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()


def test_local_cluster_nodes_get_ports_whose_bus_port_exists_and_is_free(tmp_path):
    """A node on a port above 55535 exits at start (its bus port, +10000, would pass 65535); the kernel hands
    out ports up to 60999. Every pick is low enough, its bus port is free, and a node started on one runs."""
    import socket

    from epochstream.broker import ServerProcess
    from epochstream.local_cluster import BUS_OFFSET, HIGHEST_CLUSTER_PORT, free_cluster_port

    ports = [free_cluster_port() for _ in range(300)]
    assert max(ports) <= HIGHEST_CLUSTER_PORT == 55_535
    with socket.socket() as bus:
        bus.bind(("127.0.0.1", ports[-1] + BUS_OFFSET))  # free when picked (nothing here took it since)
    node = ServerProcess(directory=tmp_path, port=free_cluster_port(),
                         extra_args=("--cluster-enabled", "yes",
                                     "--cluster-config-file", str((tmp_path / "nodes.conf").resolve()))).start()
    try:
        assert redis.Redis(port=node.port).execute_command("CLUSTER", "INFO")
    finally:
        node.kill()
