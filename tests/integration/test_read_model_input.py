"""The read model on odd but valid input, on real parts: a config nested hundreds of levels deep (D5) and
one too deep to store; two run_finished events of one run, the later-arriving one with the lower seq (D13).

Afterwards the API (a real uvicorn), SQL and a rebuild agree with what was published.
"""

from __future__ import annotations

import json

import httpx

from epochstream.readmodel.reader import ReadModelReader
from schemas.epoch import EpochV2
from schemas.keys import Keys
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from tests.conftest import ApiServer
from tests.draining import drain_all
from tests.integration.helpers import (
    RawRun,
    dead_letters,
    get_json,
    replay_log_over_current,
    walk_runs,
    xadd,
    xadd_raw,
)
from tests.readmodel import content
from workers.catalog import query
from workers.rebuild import rebuild


# -- D5: a config nested hundreds of levels deep -----------------------------------------------------------
def _nested(depth: int) -> dict:
    config: dict = {"leaf": [1, "two", None]}
    for level in range(depth - 1):
        config = {f"k{level}": config}
    return config


def _started(run_id: str, config_text: str) -> bytes:
    head = {"type": "run_started", "version": 2, "event_id": f"{run_id}:1", "run_id": run_id, "seq": 1,
            "ts": "2026-01-01T00:00:00Z", "project": "d5"}
    return (json.dumps(head)[:-1] + ', "config": ' + config_text + "}").encode()  # any depth: no encoder limit


def test_a_config_nested_hundreds_of_levels_is_served_whole_in_strict_json_and_sql(settings, redis_client):
    """D5: run_started XADDed by hand (twice: a replay) with a config 250 and 600 levels deep, in one batch
    with another run's events: all stored once, `/runs/{id}` answers 200 with the config intact (the old
    summary could no longer be parsed: 500), SQL has it, nothing is dead-lettered, a rebuild gives the same."""
    settings = settings.model_copy(update={"partitions": 1})
    configs = {"deep250": _nested(250), "deep600": _nested(600)}
    plain = RawRun("plain")
    for run_id, config in configs.items():
        for _ in range(2):
            xadd_raw(redis_client, settings, run_id, _started(run_id, json.dumps(config)))
        xadd(redis_client, settings, [RawRun(run_id, seq=1).event(EpochV2, epoch=0, metrics={"train/loss": 1.0}),
                                      plain.event(EpochV2, epoch=plain.seq, metrics={"train/loss": 1.0})])
    assert drain_all(redis_client, settings) == (8, 0)
    assert dead_letters(redis_client, settings) == 0
    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            for run_id, config in configs.items():
                run = get_json(http, f"/runs/{run_id}")  # get_json parses strictly
                assert (run["config"], run["events"], run["epochs"]) == (config, 2, 1)
            assert get_json(http, "/runs/plain")["epochs"] == 2
            items, total = walk_runs(http)
            assert total == 3 and {i["run_id"] for i in items} == {*configs, "plain"}
    finally:
        api.stop()
    rows = query(settings, "SELECT run_id, config FROM runs WHERE run_id LIKE 'deep%'").to_pylist()
    assert {r["run_id"]: json.loads(r["config"]) for r in rows} == configs
    incremental = content(settings)
    assert replay_log_over_current(settings) == ([], [])  # read back from the log: the same identities
    assert content(settings) == incremental
    rebuild(settings)
    assert content(settings) == incremental


def test_a_config_too_deep_to_store_is_dead_lettered_alone(settings, redis_client):
    """A config about 1,000 levels deep passes the codec but cannot be written to the log: that event alone
    is dead-lettered with the reason; the other events of its batch (its own run's too) are stored."""
    settings = settings.model_copy(update={"partitions": 1})
    depth = 1010
    xadd_raw(redis_client, settings, "abyss", _started("abyss", '{"k":' * depth + "1" + "}" * depth))
    others = [RawRun("abyss", seq=1), RawRun("bystander")]
    xadd(redis_client, settings, [run.event(EpochV2, epoch=e, metrics={"train/loss": 1.0}) for run in others
                                  for e in range(3)])
    assert drain_all(redis_client, settings) == (6, 1)
    (entry,) = redis_client.xrange(Keys(settings.namespace, settings.partitions).dlq)
    assert b"cannot be stored" in entry[1][b"reason"], entry[1][b"reason"]
    reader = ReadModelReader(settings.data_dir)
    try:
        assert [len(reader.epochs(run.run_id)) for run in others] == [3, 3]
    finally:
        reader.close()


# -- D13: two run_finished events, the later-arriving one with the lower seq -------------------------------
def test_the_run_finished_with_the_higher_seq_wins_whatever_arrives_last(settings, redis_client):
    """D13: `completed` (seq 4) arrives first, `failed` (seq 3) in a later batch: the run is `completed`,
    in the read model the API serves, in SQL and after a rebuild (the old projections said `failed`,
    rebuild `completed`)."""
    run = RawRun("twice")
    xadd(redis_client, settings, [run.event(RunStartedV2, project="d13"),
                                  run.event(EpochV2, epoch=0, metrics={"train/loss": 1.0}),
                                  run.event(RunFinishedV2, seq=4, status="completed", exit_code=0)])
    drain_all(redis_client, settings)
    xadd(redis_client, settings, [run.event(RunFinishedV2, seq=3, status="failed", error="late", exit_code=1)])
    assert drain_all(redis_client, settings) == (1, 0)
    reader = ReadModelReader(settings.data_dir)
    try:
        record = reader.run("twice")
        summary = record.summary
        assert (record.versions.status, summary["status"], summary["exit_code"], summary["error"]) == \
            ("completed", "completed", 0, None)
        assert [a["status"] for a in summary["attempts"]] == ["completed"]
    finally:
        reader.close()
    assert query(settings, "SELECT status FROM runs").to_pylist() == [{"status": "completed"}]
    incremental = content(settings)
    rebuild(settings)
    assert content(settings) == incremental
