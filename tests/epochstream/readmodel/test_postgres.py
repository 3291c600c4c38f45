"""The PostgreSQL store against a real server: fences across connections, readers never waiting for a
writer, generations and the swap, the long-poll probe, error translation and the setting."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime

import pydantic
import pytest

from epochstream.errors import ConfigurationError
from epochstream.readmodel import ReadModelWriter, StaleFence
from epochstream.readmodel.compare import canonical
from epochstream.readmodel.database import DDL
from epochstream.readmodel.dialect import POSTGRES, SQLITE
from epochstream.readmodel.errors import ReadModelConfigError, ReadModelError, ReadModelRejected, ReadModelUnavailable
from epochstream.readmodel.listing import RunQuery
from epochstream.readmodel.postgres import PostgresStore, masked
from epochstream.readmodel.reader import ReadModelReader
from epochstream.readmodel.stores import store_for
from epochstream.settings import Settings
from schemas.epoch import EpochV2
from schemas.run_started import RunStartedV2
from tests.postgres import url_of
from workers.health import describe, is_infrastructure

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def epoch(run_id: str, seq: int) -> EpochV2:
    return EpochV2(event_id=f"{run_id}:{seq}", run_id=run_id, seq=seq, ts=T0, epoch=seq, metrics={"val/loss": 1 / seq})


@contextlib.contextmanager
def writer_and_reader(tmp_path, url: str):
    """The writer a drain opens and the reader an API host opens, on the read model `url` names."""
    writer = ReadModelWriter.open(tmp_path, url=url)
    reader = ReadModelReader(tmp_path, url)
    try:
        yield writer, reader
    finally:
        reader.close()
        writer.close()


def entries(run_id: str, seqs, start: int = 1):
    return [(f"{start + i}-0", epoch(run_id, s), T0) for i, s in enumerate(seqs)]


def test_the_dialect_translates_placeholders_types_and_functions():
    statement = "SELECT a FROM t WHERE b = ? AND c LIKE 'x%'"
    assert POSTGRES.sql(statement) == "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%'"
    assert SQLITE.sql("SELECT ?") == "SELECT ?" and SQLITE.ddl(DDL) == DDL
    ddl = POSTGRES.ddl(DDL)
    assert "WITHOUT ROWID" not in ddl and " REAL" not in ddl and "BLOB" not in ddl and " INTEGER" not in ddl
    assert "digest BYTEA" in ddl and "best_asc DOUBLE PRECISION" in ddl and 'run_id TEXT COLLATE "C"' in ddl
    assert POSTGRES.contains("name", "?") == "strpos(name, ?) > 0"


def test_the_setting_takes_empty_or_postgresql_only(tmp_path):
    assert Settings().read_model_url == ""
    assert Settings(read_model_url="postgresql://u@h/db").read_model_url == "postgresql://u@h/db"
    with pytest.raises(pydantic.ValidationError):
        Settings(read_model_url="mysql://u@h/db")
    with pytest.raises(ConfigurationError, match="postgresql://"):
        store_for(tmp_path, "sqlite:///x")
    assert masked("postgresql://u:secret@db.example:6543/rm") == "postgresql://db.example:6543/rm"


def test_a_stale_fence_is_refused_across_hosts(postgres_url, tmp_path):
    old = ReadModelWriter.open(tmp_path, url=postgres_url)
    new = ReadModelWriter.open(tmp_path, url=postgres_url)
    try:
        old.claim(0, 1)
        old.apply(0, entries("a", [1, 2]), 1, T0)
        new.claim(0, 2)  # another host's drain takes the partition over
        with pytest.raises(StaleFence, match="fence token 1 is older than the read model's 2"):
            old.apply(0, entries("a", [3], start=3), 1, T0)
        with pytest.raises(StaleFence):
            old.claim(0, 1)
        assert new.apply(0, entries("a", [3], start=3), 2, T0).runs_changed == ["a"]
        assert new.tracking(0) == (f"{3}-0", 2, 2)
        assert new.con.execute("SELECT count(*) FROM epochs").fetchone()[0] == 3  # the stale batch left nothing
    finally:
        old.close()
        new.close()


def test_readers_never_wait_for_an_open_write_transaction(postgres_url, tmp_path):
    with writer_and_reader(tmp_path, postgres_url) as (writer, reader):
        writer.apply(0, entries("a", [1]), 1, T0)
        seen: list = []
        with writer.store.transaction(writer.con, 0):
            writer.con.execute("UPDATE runs SET epochs = 99 WHERE run_id = 'a'")
            writer.con.execute("LOCK TABLE runs IN EXCLUSIVE MODE")
            thread = threading.Thread(target=lambda: seen.append(
                (reader.run("a").summary["epochs"], [e.epoch for e in reader.epochs("a")])))
            began = time.monotonic()
            thread.start()
            thread.join(10)
            assert seen == [(1, [1])] and time.monotonic() - began < 5  # the last commit, at once


def test_a_swap_moves_readers_and_the_probe_and_old_generations_retire(postgres_url, tmp_path):
    store = PostgresStore(postgres_url)
    with writer_and_reader(tmp_path, postgres_url) as (writer, reader):
        first = reader.data_version()
        writer.apply(0, entries("a", [1, 2]), 1, T0)
        moved = reader.data_version()
        assert moved[0] == first[0] == writer.generation and moved[1] > first[1]
        def rebuilt(seqs) -> str:
            generation = store.new_generation()
            building = store.building_target(generation)
            fresh = ReadModelWriter(building, durable=False, generation=generation, store=store)
            fresh.apply(0, entries("a", seqs), 0, T0)
            fresh.close()
            assert [e.epoch for e in reader.epochs("a")] == list(seqs)[:-1]  # nobody reads a building schema
            store.swap_in(generation, building)
            return generation

        generation = rebuilt([1, 2, 3])
        assert [e.epoch for e in reader.epochs("a")] == [1, 2, 3]  # the query's own pointer check saw the swap
        assert reader.generation() == generation and reader.data_version()[0] == generation
        assert store.retire_old() == []  # the old generation stays whole for RETIRE_AFTER_S
        assert store.retire_old(older_than_s=0) == [store.schema_of(writer.generation)]
        assert store.current() == (generation, store.schema_of(generation))
        newest = rebuilt([1, 2, 3, 4])
        assert store.retire_old(older_than_s=0) == [store.schema_of(generation)]  # the one this reader is on
        assert [e.epoch for e in reader.epochs("a")] == [1, 2, 3, 4] and reader.generation() == newest


def test_a_failed_rebuild_leaves_nothing_and_content_compares(postgres_url):
    store = PostgresStore(postgres_url)
    store.current_or_create()
    building = store.building_target(store.new_generation())
    writer = ReadModelWriter(building, durable=False, store=store)
    writer.apply(0, entries("a", [1, 2]), 0, T0)
    assert canonical(writer.con)["epochs"][0][:2] == ("a", 1)
    writer.close()
    store.discard_building(building)
    con = store.connect()
    try:
        names = con.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'building%'").fetchall()
    finally:
        con.close()
    assert names == []


def test_psycopg_errors_become_ours_with_what_to_do(postgres_url, tmp_path):
    with pytest.raises(ReadModelUnavailable, match="unavailable .* check that the server is up") as down:
        PostgresStore("postgresql://postgres:secret@127.0.0.1:1/x").current_or_create()
    # what `status` then shows for the held-up partition names the server, never the data directory or password
    problem = describe(down.value, tmp_path, PostgresStore("postgresql://postgres:secret@127.0.0.1:1/x").describe())
    assert problem.startswith("read model unavailable at postgresql://127.0.0.1:1/x: ") and "secret" not in problem
    with pytest.raises(ReadModelConfigError, match="check the user, password, database name"):
        PostgresStore(url_of("epochstream_test_no_such_database")).current_or_create()
    writer = ReadModelWriter.open(tmp_path, url=postgres_url)
    try:
        huge = EpochV2(event_id="h:1", run_id="h", seq=1, ts=T0, epoch=1, samples=2**70, metrics={})
        with pytest.raises(ReadModelRejected, match="cannot store a value of this batch") as refused:
            writer.apply(0, [("1-0", huge, T0)], 1, T0)
        # the drain counts a refused value against its entries (dead-lettered in the end), and retries the rest
        assert not is_infrastructure(refused.value)
        assert is_infrastructure(ReadModelUnavailable("x")) and is_infrastructure(ReadModelConfigError("x"))
        assert writer.apply(0, entries("a", [1]), 1, T0).runs_changed == ["a"]  # the connection still works
    finally:
        writer.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def read_model_url(request) -> str:
    return "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_a_nul_in_free_text_is_stored_found_and_shown_as_sent(read_model_url, tmp_path):
    """SQLite stores a NUL character; PostgreSQL text cannot: in both, the listing's filters find the run
    and its summary shows the exact text."""
    with writer_and_reader(tmp_path, read_model_url) as (writer, reader):
        started = RunStartedV2(event_id="n:1", run_id="n", seq=1, ts=T0, project="a\x00b", name="x\x00y",
                               tags=["t\x00"])
        writer.apply(0, [("1-0", started, T0), ("2-0", epoch("other", 1), T0)], 1, T0)
        for query in (RunQuery(project="a\x00b"), RunQuery(tag="t\x00"), RunQuery(name_prefix="x\x00"),
                      RunQuery(search="\x00y")):
            page = reader.list_runs(query, T0)
            assert [summary["run_id"] for summary, _, _ in page.runs] == ["n"] and page.total == 1, query
        assert [s["run_id"] for s, _, _ in reader.list_runs(RunQuery(project="a\ufffdb"), T0).runs] == (
            ["n"] if read_model_url else [])  # PostgreSQL's stand-in character: the one collision it adds
        summary = reader.run("n").summary
        assert (summary["project"], summary["name"], summary["tags"]) == ("a\x00b", "x\x00y", ["t\x00"])


def test_reader_sessions_are_read_only_and_survive_a_dropped_connection(postgres_url, tmp_path):
    with writer_and_reader(tmp_path, postgres_url) as (writer, reader):
        writer.apply(0, entries("a", [1, 2]), 1, T0)
        assert [e.epoch for e in reader.epochs("a")] == [1, 2]
        with pytest.raises(ReadModelError, match="read-only"):
            reader._query("INSERT INTO problems VALUES ('a', 0, 'no')")
        writer.con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
        with pytest.raises(ReadModelUnavailable):  # the query in flight when it happened fails, transient...
            reader.epochs("a")
        assert [e.epoch for e in reader.epochs("a")] == [1, 2]  # ...and the next one has a new session


def test_a_takeover_waits_for_the_open_batch_of_its_partition_only(postgres_url, tmp_path):
    """The advisory lock: a claim of partition 0 waits for the batch being committed there (so that batch's
    fence check still holds at its COMMIT), and is refused nothing; partition 1 does not wait at all."""
    old = ReadModelWriter.open(tmp_path, url=postgres_url)
    new = ReadModelWriter.open(tmp_path, url=postgres_url)
    other = ReadModelWriter.open(tmp_path, url=postgres_url)
    try:
        old.claim(0, 1)
        done: list[str] = []
        with old.store.transaction(old.con, 0):
            assert old.tracking(0).fence == 1  # checked, and it holds until COMMIT
            takeover = threading.Thread(target=lambda: (new.claim(0, 2), done.append("claimed 0")))
            takeover.start()
            other.claim(1, 7)  # another partition: no wait
            done.append("claimed 1")
            takeover.join(0.5)
            assert done == ["claimed 1"] and takeover.is_alive()  # the takeover waits for this batch's COMMIT
        takeover.join(10)
        assert done == ["claimed 1", "claimed 0"] and new.tracking(0).fence == 2
        with pytest.raises(StaleFence):
            old.apply(0, entries("a", [1]), 1, T0)
    finally:
        for writer in (old, new, other):
            writer.close()
