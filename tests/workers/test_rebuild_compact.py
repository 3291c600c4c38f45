"""Rebuild reproduces the incremental read model; compaction changes no query result."""

from __future__ import annotations

from epochstream.layout import DataLayout
from epochstream.readmodel.location import Location
from schemas.keys import PAYLOAD_FIELD, Keys
from tests.draining import drain_all
from tests.readmodel import content
from tests.workers.helpers import publish_runs
from tests.workers.test_drain import POISON
from workers.catalog import query
from workers.compaction import compact
from workers.log_reader import count_by_id, segments
from workers.rebuild import rebuild

VIEWS = {
    "epochs": "SELECT * EXCLUDE (metrics), map_entries(metrics) AS m FROM epochs ORDER BY run_id, epoch",
    "epoch_metrics": "SELECT * FROM epoch_metrics ORDER BY run_id, epoch, metric",
    "system": "SELECT * EXCLUDE (ingested_at) FROM system ORDER BY run_id, seq",
    "system_1m": "SELECT * FROM system_1m ORDER BY run_id, minute",
    "run_started": "SELECT * EXCLUDE (ingested_at) FROM run_started ORDER BY run_id",
    "run_finished": "SELECT * EXCLUDE (ingested_at) FROM run_finished ORDER BY run_id",
    "runs": "SELECT * FROM runs ORDER BY run_id",
    "trends": "SELECT * FROM trends ORDER BY run_id",
    "dead_letters": "SELECT * FROM dead_letters ORDER BY stream, stream_id",
}


def ingest_with_duplicates(settings, redis_client):
    """Many small batches (many segments, many incremental versions), a replayed copy of run r0, poison."""
    settings = settings.model_copy(update={"drain_batch": 9})
    publish_runs(settings, runs=4, epochs=25, system_every=4)
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream_for_run("r0")
    for _, fields in redis_client.xrange(stream, count=20):
        redis_client.xadd(stream, fields)
    redis_client.xadd(stream, {PAYLOAD_FIELD: POISON["bad json"]})
    drain_all(redis_client, settings)
    publish_runs(settings, runs=1, epochs=5, prefix="late")
    drain_all(redis_client, settings)
    return settings


def test_rebuild_equals_the_incremental_read_model_and_never_repeats_an_etag(settings, redis_client):
    settings = ingest_with_duplicates(settings, redis_client)
    incremental = content(settings)
    assert len(incremental["runs"]) == 5
    generation = Location.of(settings.data_dir).current()[0]
    before = {name: query(settings, sql).to_pylist() for name, sql in VIEWS.items()}
    assert rebuild(settings) == 5
    assert content(settings) == incremental
    assert Location.of(settings.data_dir).current()[0] != generation  # a new generation: new ETags
    after = {name: query(settings, sql).to_pylist() for name, sql in VIEWS.items()}
    for name in before:
        if name in ("runs", "trends"):  # the snapshot differs only in what differs between two of the same events
            strip = [{k: v for k, v in row.items() if k not in ("version", "ingested_at")} for row in before[name]]
            assert strip == [{k: v for k, v in row.items() if k not in ("version", "ingested_at")}
                             for row in after[name]]
        else:
            assert after[name] == before[name], name
    assert not list(Location.of(settings.data_dir).directory.glob("building-*"))


def test_compaction_changes_no_query_result_and_removes_duplicates(settings, redis_client):
    settings = ingest_with_duplicates(settings, redis_client)
    layout = DataLayout(settings.data_dir)
    before = {name: query(settings, sql).to_pylist() for name, sql in VIEWS.items()}
    copies = count_by_id(layout, "epoch")
    assert max(copies.values()) == 2
    files_before = len(segments(layout, "epoch"))
    assert files_before > 3

    results = {r.event_type: r for r in compact(settings)}
    assert results["epoch"].files_in == files_before
    assert results["epoch"].rows_in == sum(copies.values())
    assert results["epoch"].rows_out == len(copies) == 105  # 4 runs x 25 + 5 late epochs
    assert len(segments(layout, "epoch")) == 1
    assert set(count_by_id(layout, "epoch").values()) == {1}
    after = {name: query(settings, sql).to_pylist() for name, sql in VIEWS.items()}
    assert after == before
    assert compact(settings)[1].files_in == 0  # nothing left to merge


def test_compaction_next_to_a_running_drain_loses_nothing(settings, redis_client):
    import threading

    settings = settings.model_copy(update={"drain_batch": 7})
    layout = DataLayout(settings.data_dir)
    done = threading.Event()
    errors: list[BaseException] = []

    def ingest():
        try:
            for k in range(8):
                publish_runs(settings, runs=1, epochs=20, prefix=f"c{k}-")
                drain_all(redis_client, settings)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=ingest)
    thread.start()
    merged, seen = 0, []
    while not done.is_set():
        merged += sum(r.files_in for r in compact(settings, ["epoch"]))
        seen.append(query(settings, "SELECT count(*) AS n FROM epochs").to_pylist()[0]["n"])
    thread.join()
    assert not errors
    compact(settings, ["epoch"])
    assert merged > 0
    assert seen == sorted(seen)  # a reader never sees an event vanish, not even for a moment
    assert query(settings, "SELECT count(*) AS n FROM epochs").to_pylist() == [{"n": 160}]
    assert len(count_by_id(layout, "epoch")) == 160 and set(count_by_id(layout, "epoch").values()) == {1}
