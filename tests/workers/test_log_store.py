"""The log on S3-compatible object storage (`workers.log_store`), against a real S3 server (moto's, on
loopback): what the store writes, lists and reads; drains, compaction and rebuild on it; and its failures
reaching the drain as transient infrastructure failures, never as damage or dead letters."""

from __future__ import annotations

from pathlib import PurePosixPath

import pyarrow as pa
import pytest

from epochstream.errors import LogStoreUnavailable
from epochstream.layout import DataLayout, s3_location
from tests.draining import drain_all
from tests.readmodel import content
from tests.s3 import S3Server, require_moto
from tests.workers.helpers import publish_runs
from workers import health
from workers.catalog import query
from workers.compaction import compact
from workers.log_reader import count_by_identity, read_log, segments, superseded_marker
from workers.log_store import fsspec_options, log_store, s3_options
from workers.quarantine import quarantined
from workers.rebuild import rebuild


def test_aws_variables_become_client_options():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_DEFAULT_REGION": "eu-west-1"}
    options = s3_options(env)
    assert (options["endpoint_override"], options["scheme"]) == ("127.0.0.1:9000", "http")
    assert (options["access_key"], options["secret_key"], options["region"]) == ("k", "s", "eu-west-1")
    assert "endpoint_override" not in s3_options({})  # AWS itself, credentials from the SDK's chain
    assert s3_options({"AWS_ENDPOINT_URL": "https://minio.internal"})["scheme"] == "https"
    fs = fsspec_options(env)
    assert fs["endpoint_url"] == "http://127.0.0.1:9000" and fs["use_listings_cache"] is False
    assert s3_location("s3://bucket/a/b/") == PurePosixPath("bucket/a/b")
    with pytest.raises(ValueError):
        s3_location("s3:///nobucket")


def test_segments_are_single_objects_listed_without_markers(s3_settings, s3_server):
    layout = DataLayout.of(s3_settings)
    store = log_store(layout)
    bucket = s3_settings.log_url.removeprefix("s3://").split("/")[0]
    table = pa.table({"run_id": ["a"], "event_id": ["a:1"]})
    first, second = (layout.log_dir("epoch") / f"seg-2026010{i}T000000000000Z-p0-0000000{i}.parquet" for i in (1, 2))
    store.write_parquet(table, first)
    store.write_parquet(table, second)
    store.write_marker(superseded_marker(first))
    assert sorted(s3_server.keys(bucket)) == sorted(  # no temporary names, no renames: the objects and nothing else
        [f"log/epoch/{first.name}", f"log/epoch/{second.name}", f"log/epoch/.{first.name}.superseded"])
    assert store.live("epoch") == [second]
    assert [f.name for f in store.files("epoch")] == [first.name, second.name]
    assert store.superseded_names("epoch") == {first.name}
    assert store.read_table(second).to_pylist() == table.to_pylist()
    assert store.delete(second) and not store.delete(second) and not store.exists(second)
    with pytest.raises(FileNotFoundError):
        store.read_table(second)
    assert store.live("system") == []  # a type nothing was written for yet


def test_drain_compact_rebuild_on_s3_keep_every_event_once(s3_settings, redis_client):
    settings = s3_settings.model_copy(update={"partitions": 2, "drain_batch": 40})
    publish_runs(settings, runs=4, epochs=25, system_every=5)
    assert drain_all(redis_client, settings).dead_lettered == 0
    layout = DataLayout.of(settings)
    assert not (settings.data_dir / "log").exists()  # nothing of the log is local
    before = content(settings)
    parts = segments(layout, "epoch")
    assert len(parts) > 2
    copies = count_by_identity(layout, "epoch")
    assert len(copies) == 100 and set(copies.values()) == {1}
    epochs_sql = "SELECT run_id, count(*) AS n, count(DISTINCT event_id) AS ids FROM epochs GROUP BY 1 ORDER BY 1"
    by_sql = query(settings, epochs_sql).to_pylist()
    assert by_sql == [{"run_id": f"r{i}", "n": 25, "ids": 25} for i in range(4)]

    results = {r.event_type: r for r in compact(settings, keep_s=3600)}
    assert results["epoch"].files_in == len(parts) and results["epoch"].rows_out == 100
    merged = segments(layout, "epoch")
    assert len(merged) <= settings.partitions and all("-compacted-" in p.name for p in merged)
    assert log_store(layout).superseded_names("epoch") == {p.name for p in parts}  # kept, marked, for queries
    assert read_log(layout, "epoch").num_rows == 100
    assert query(settings, epochs_sql).to_pylist() == by_sql  # parts and merged file both listed: counted once

    assert rebuild(settings) == 4
    assert content(settings) == before  # rebuild(log on S3) equals the incremental read model
    results = {r.event_type: r for r in compact(settings, keep_s=0)}  # grace over: the parts go
    assert results["epoch"].removed == len(parts)
    assert [f.name for f in log_store(layout).files("epoch")] == [p.name for p in merged]
    assert quarantined(layout) == []


def test_a_stopped_s3_server_is_a_transient_failure_not_damage(settings, tmp_path, monkeypatch):
    require_moto()
    server = S3Server()
    server.start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    s3 = settings.model_copy(update={"log_url": f"s3://{server.fresh_bucket()}/log"})
    layout = DataLayout.of(s3)
    store = log_store(layout)
    path = layout.log_dir("epoch") / "seg-20260101T000000000000Z-p0-00000001.parquet"
    store.write_parquet(pa.table({"a": [1]}), path)
    server.stop()
    calls = [lambda: store.read_table(path), lambda: store.live("epoch"), lambda: store.exists(path),
             lambda: store.write_parquet(pa.table({"a": [2]}), path.with_name("seg-x.parquet"))]
    for call in calls:
        with pytest.raises(LogStoreUnavailable, match="AWS_ENDPOINT_URL") as caught:
            call()
        assert health.is_infrastructure(caught.value)  # the drain keeps the batch pending and retries
        assert not isinstance(caught.value, OSError)  # so quarantine can never take it for a damaged file
    assert "log store unavailable" in health.describe(caught.value, s3.data_dir, "sqlite")


def test_migrate_copies_what_the_target_lacks_by_name_and_size():
    from workers.log_store import LogFile
    from workers.migrate import to_copy

    local = [LogFile(PurePosixPath(f"log/epoch/{n}"), size, 0.0) for n, size in (("a", 10), ("b", 20), ("c", 30))]
    remote = [LogFile(PurePosixPath("bkt/log/epoch/a"), 10, 0.0), LogFile(PurePosixPath("bkt/log/epoch/b"), 7, 0.0)]
    missing, there = to_copy(local, remote)
    assert [f.name for f in missing] == ["b", "c"] and there == 1  # b: another file under its name: sent again
    assert to_copy(local, local) == ([], 3)
