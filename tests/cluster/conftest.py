"""A 3-master Redis Cluster and a standalone control Redis, started by the tests on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from epochstream.broker import ServerProcess
from epochstream.local_cluster import LocalCluster
from epochstream.settings import Settings
from producer.testing import unique_namespace


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster"), masters=3) as running:
        yield running


@pytest.fixture(scope="module")
def control(tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(directory=tmp_path_factory.mktemp("control")).start()
    yield server
    server.kill()


@pytest.fixture
def cluster_settings(cluster, control, tmp_path) -> Settings:
    return Settings(redis_url=cluster.url, queue_url=control.url, namespace=unique_namespace(),
                    data_dir=tmp_path / "data", partitions=8, spool_dir=tmp_path / "spool", system_interval_s=3600)
