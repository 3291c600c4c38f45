"""Rebuild reproduces the incremental read model; compaction changes no query result."""

from __future__ import annotations

from datetime import UTC, datetime

from epochstream.layout import DataLayout, atomic_write_parquet
from epochstream.readmodel.location import Location
from schemas.epoch import EpochV2
from schemas.keys import PAYLOAD_FIELD, Keys, partition_of
from tests.draining import drain_all
from tests.readmodel import content, epoch_numbers
from tests.workers.helpers import publish_runs
from tests.workers.test_drain import POISON
from workers.catalog import query
from workers.compaction import compact
from workers.log_reader import count_by_id, count_by_identity, read_log, segments
from workers.log_schema import tables_by_type
from workers.log_store import log_store
from workers.rebuild import rebuild
from workers.segment_meta import stamps

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
    partitions = {partition_of(run, settings.partitions) for run in ("r0", "r1", "r2", "r3", "late0")}
    merged = segments(layout, "epoch")
    assert len(merged) == len(partitions) == results["epoch"].files_out  # one per partition, each stamped:
    assert {stamps(path, log_store(layout))[0] for path in merged} == partitions
    assert all(stamps(path, log_store(layout))[1] is not None for path in merged)
    # the parts stay on disk (marked superseded) for queries that listed them; views count them once
    assert len(list(layout.log_dir("epoch").glob("seg-*.parquet"))) == files_before + len(partitions)
    assert set(count_by_id(layout, "epoch").values()) == {1}
    after = {name: query(settings, sql).to_pylist() for name, sql in VIEWS.items()}
    assert after == before
    assert compact(settings)[1].files_in == 0  # nothing left to merge
    assert compact(settings, keep_s=0)[1].removed == files_before  # their grace period over, the parts go
    assert len(list(layout.log_dir("epoch").glob("*seg-*"))) == len(partitions)  # markers and all
    assert {name: query(settings, sql).to_pylist() for name, sql in VIEWS.items()} == before


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


def test_a_foreign_row_under_a_victims_event_id_in_an_old_log_hides_nothing(settings, redis_client):
    """A log written before ids were checked against their run may hold an event of run "evil" carrying
    "r0:5", stored before r0's own: SQL, compaction and rebuild key on (run_id, event_id), so r0 keeps it."""
    settings = settings.model_copy(update={"drain_batch": 9})
    publish_runs(settings, runs=1, epochs=6)
    drain_all(redis_client, settings)
    layout = DataLayout(settings.data_dir)
    own = query(settings, "SELECT epoch, seq, event_id FROM epochs WHERE run_id = 'r0' ORDER BY epoch").to_pylist()
    assert "r0:5" in [row["event_id"] for row in own]
    # What the old drain stored: no validation then, so the model is constructed as the log reader does.
    foreign = EpochV2.model_construct(event_id="r0:5", run_id="evil", seq=5, ts=datetime(2020, 1, 1, tzinfo=UTC),
                                      epoch=3, metrics={"train/loss": 999.0}, samples=1, warnings=[], host="", pid=0)
    old = layout.log_dir("epoch") / "seg-20000101T000000000000Z-p0-00000000.parquet"  # sorts first: the oldest
    atomic_write_parquet(tables_by_type([("0-1", foreign)], datetime(2020, 1, 1, tzinfo=UTC))["epoch"], old)
    assert read_log(layout, "epoch").num_rows == 7  # both kept: two identities

    def victim() -> list:
        return query(settings, "SELECT epoch, seq, event_id FROM epochs WHERE run_id = 'r0' ORDER BY epoch").to_pylist()

    assert victim() == own
    assert query(settings, "SELECT run_id FROM epoch_events WHERE event_id = 'r0:5' ORDER BY run_id").to_pylist() \
        == [{"run_id": "evil"}, {"run_id": "r0"}]
    compact(settings, ["epoch"])
    assert count_by_identity(layout, "epoch") == {**{("r0", row["event_id"]): 1 for row in own}, ("evil", "r0:5"): 1}
    assert victim() == own
    rebuild(settings)
    assert epoch_numbers(settings, "r0") == [row["epoch"] for row in own] and victim() == own
