"""Hostile entries XADDed straight into the streams, drained by a real worker process: an event of run "evil"
carrying the victim's `event_id` (put in before the victim's own event), and one identity of the victim with
two payloads, in one batch and across batches. The victim's data must stay whole in the API (a real uvicorn),
in SQL (the DuckDB catalog), after `epochstream compact` and after `epochstream rebuild` (real CLI
processes), and every hostile entry must be in the dead-letter stream with a reason that says why.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Any

import httpx
import orjson

from epochstream.layout import DataLayout
from schemas.codec import encode
from schemas.epoch import EpochV2
from schemas.keys import PAYLOAD_FIELD, Keys
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from tests.conftest import ROOT, ApiServer, settings_env
from tests.integration.helpers import T0, RawRun, get_json, walk_runs
from tests.readmodel import content
from workers.catalog import query
from workers.dead_letters import list_dead_letters
from workers.log_reader import count_by_identity, read_log
from workers.scheduling import schedule_once

CLI = "from epochstream.cli import main; main()"
EPOCHS = 10
HOSTILE_LOSS = 999.0


def _loss(epoch: int) -> float:
    return 1.0 / (epoch + 1)


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", CLI, *args], env=settings_env(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"epochstream {' '.join(args)}: {proc.stdout[-1500:]} {proc.stderr[-3000:]}"
    return proc


def _drain_in_a_worker_process(settings, redis_client) -> None:
    assert schedule_once(redis_client, settings, settings.redis_url) >= 1
    _cli(settings, "worker", "--burst", "--no-scheduler")
    keys = Keys(settings.namespace, settings.partitions)
    assert all(redis_client.xpending(keys.stream(p), keys.group)["pending"] == 0 for p in range(settings.partitions))
    assert all(not redis_client.xinfo_groups(keys.stream(p))[0]["lag"] for p in range(settings.partitions))


def _hostile_epoch(run_id: str, event_id: str, seq: int, epoch: int, loss: float) -> bytes:
    # Built by hand: the models refuse an event_id that is not the run's own, as a hostile producer would not.
    return orjson.dumps({"type": "epoch", "version": 2, "event_id": event_id, "run_id": run_id, "seq": seq,
                         "ts": (T0 + timedelta(seconds=seq)).isoformat(), "epoch": epoch,
                         "metrics": {"train/loss": loss, "val/loss": loss}, "samples": 8})


def _victim_seen_by_api(http: httpx.Client) -> dict[str, Any]:
    items, total = walk_runs(http)
    assert [item["run_id"] for item in items] == ["vic1"] and total == 1  # no run "evil" either
    run = get_json(http, "/runs/vic1")
    epochs = get_json(http, "/runs/vic1/epochs")["epochs"]
    best = get_json(http, "/runs/vic1/best", metric="train/loss", mode="min")
    return {"status": run["status"], "epochs": run["epochs"], "events": run["events"], "last_seq": run["last_seq"],
            "rows": [(e["epoch"], e["seq"], e["metrics"]["train/loss"]) for e in epochs],
            "best": (best["epoch"]["epoch"], best["value"]), "listed_epochs": items[0]["epochs"]}


def _victim_seen_by_sql(settings) -> dict[str, Any]:
    rows = query(settings, 'SELECT run_id, epoch, seq, event_id, "train/loss" AS loss FROM epochs '
                           "ORDER BY run_id, epoch").to_pylist()
    raw = query(settings, "SELECT run_id, event_id, map_extract(metrics, 'train/loss')[1] AS loss FROM epoch_events "
                          "ORDER BY run_id, seq").to_pylist()
    runs = query(settings, "SELECT run_id, status, epochs, events FROM runs").to_pylist()
    return {"rows": [(r["run_id"], r["epoch"], r["seq"], r["event_id"], r["loss"]) for r in rows],
            "raw": [(r["run_id"], r["event_id"], r["loss"]) for r in raw], "runs": runs}


def test_hostile_identities_are_dead_lettered_and_the_victim_stays_whole_everywhere(settings, redis_client):
    settings = settings.model_copy(update={"partitions": 2, "claim_idle_ms": 0})
    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream_for_run("vic1")  # the hostile entries go straight into the victim's stream
    vic = RawRun("vic1")
    started = vic.event(RunStartedV2, project="hostile", name="vic1", config={"lr": 0.1})
    epochs = [vic.event(EpochV2, epoch=e, metrics={"train/loss": _loss(e), "val/loss": _loss(e)}, samples=8)
              for e in range(EPOCHS)]  # epoch e is seq e + 2
    finished = vic.event(RunFinishedV2, status="completed", exit_code=0)
    own_five, own_seven = epochs[3], epochs[5]
    assert (own_five.event_id, own_seven.event_id) == ("vic1:5", "vic1:7")

    # Phase 1, one batch: "evil" claims vic1:5 before vic1's own epoch 5; a second vic1:7 right after the real one.
    entries: list[bytes] = [encode(started)]
    for event in epochs:
        if event is own_five:
            entries.append(_hostile_epoch("evil", "vic1:5", 5, 3, HOSTILE_LOSS))
        entries.append(encode(event))
        if event is own_seven:
            entries.append(_hostile_epoch("vic1", "vic1:7", 7, 5, HOSTILE_LOSS))
    entries.append(encode(finished))
    pipe = redis_client.pipeline(transaction=False)
    for payload in entries:
        pipe.xadd(stream, {PAYLOAD_FIELD: payload})
    pipe.execute()
    _drain_in_a_worker_process(settings, redis_client)

    # Phase 2, a later batch: vic1:7 again with other content (a conflict), and the real one again (a replay).
    redis_client.xadd(stream, {PAYLOAD_FIELD: _hostile_epoch("vic1", "vic1:7", 7, 5, 555.0)})
    redis_client.xadd(stream, {PAYLOAD_FIELD: encode(own_seven)})
    _drain_in_a_worker_process(settings, redis_client)

    expected_rows = [(e, e + 2, _loss(e)) for e in range(EPOCHS)]
    expected_api = {"status": "completed", "epochs": EPOCHS, "events": EPOCHS + 2, "last_seq": EPOCHS + 2,
                    "rows": expected_rows, "best": (EPOCHS - 1, _loss(EPOCHS - 1)), "listed_epochs": EPOCHS}
    expected_sql = {"rows": [("vic1", e, s, f"vic1:{s}", loss) for e, s, loss in expected_rows],
                    "raw": [("vic1", f"vic1:{e + 2}", _loss(e)) for e in range(EPOCHS)],
                    "runs": [{"run_id": "vic1", "status": "completed", "epochs": EPOCHS, "events": EPOCHS + 2}]}

    letters = list_dead_letters(redis_client, settings)
    payloads = [orjson.loads(letter.payload) for letter in letters]
    assert [(p["run_id"], p["event_id"], p["metrics"]["train/loss"]) for p in payloads] == [
        ("evil", "vic1:5", HOSTILE_LOSS), ("vic1", "vic1:7", HOSTILE_LOSS), ("vic1", "vic1:7", 555.0)]
    reasons = [letter.reason for letter in letters]
    assert "'vic1:5' does not belong to run 'evil'" in reasons[0] and "must be 'evil:5'" in reasons[0]
    assert reasons[1].startswith("conflict:") and "taken in this batch as 'vic1:7'" in reasons[1]
    assert reasons[2].startswith("conflict:") and "already applied as 'vic1:7'" in reasons[2]
    assert all("different content" in r and "the first one stands" in r for r in reasons[1:])
    sql_letters = query(settings, "SELECT reason FROM dead_letters ORDER BY stream_id").to_pylist()
    assert [r["reason"] for r in sql_letters] == reasons  # the log's dead-letter set says the same

    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            assert _victim_seen_by_api(http) == expected_api
            assert _victim_seen_by_sql(settings) == expected_sql
            incremental = content(settings)

            compacted = _cli(settings, "compact", "--min-age", "0")
            assert "epoch:" in compacted.stdout
            copies = count_by_identity(DataLayout(settings.data_dir), "epoch")
            assert copies == {("vic1", f"vic1:{e + 2}"): 1 for e in range(EPOCHS)}  # physically once, nothing else
            assert _victim_seen_by_api(http) == expected_api
            assert _victim_seen_by_sql(settings) == expected_sql

            rebuilt = _cli(settings, "rebuild", "--wait", "10")
            assert "1 run(s)" in rebuilt.stdout
            assert content(settings) == incremental
            assert _victim_seen_by_api(http) == expected_api
            assert _victim_seen_by_sql(settings) == expected_sql
    finally:
        api.stop()
    losses = read_log(DataLayout(settings.data_dir), "epoch").column("metrics").to_pylist()
    assert sorted(dict(m)["train/loss"] for m in losses) == sorted(_loss(e) for e in range(EPOCHS))
    assert len(list_dead_letters(redis_client, settings)) == 3  # nothing more was dead-lettered on the way
