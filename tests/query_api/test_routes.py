"""The routes against the real app (in-process ASGI) over projections built by the real pipeline."""

from __future__ import annotations

import math

import pytest

from query_api.encoding import strict_loads
from query_api.models import BestPublic, EpochsPublic, RunPublic, RunsPagePublic, SystemPublic
from tests.conftest import READ_MODELS, with_read_model
from tests.draining import drain_all
from tests.query_api.pipeline import losses, make_run

pytestmark = pytest.mark.anyio
LONG_ERROR = "RuntimeError: CUDA out of memory. " + "x" * 5000 + " END-OF-ERROR"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=READ_MODELS)
def settings(request, settings):
    return with_read_model(request, settings)  # every test here on SQLite and on PostgreSQL


@pytest.fixture
def runs(publisher, redis_client, settings):
    ok = make_run(publisher, "vision", losses(12), name="ok", system=5)
    nan = make_run(publisher, "vision", [{"train/loss": 1.0, "val/loss": 1.0}, {"train/loss": float("nan"),
                                          "val/loss": float("inf")}], name="nan")
    failed = make_run(publisher, "nlp", losses(3), name="bad", finish="failed", error=LONG_ERROR)
    live = make_run(publisher, "nlp", losses(2), name="live", finish=None)
    drain_all(redis_client, settings)
    return {"ok": ok.run_id, "nan": nan.run_id, "failed": failed.run_id, "live": live.run_id}


async def get(client, url, **kw):
    resp = await client.get(url, **kw)
    assert resp.status_code < 500, resp.text
    if resp.status_code != 304:
        resp.parsed = strict_loads(resp.content)
    return resp


async def test_summary_has_full_error_best_and_deprecated_history(client, runs):
    resp = await get(client, f"/runs/{runs['failed']}")
    assert resp.status_code == 200 and resp.headers["etag"]
    run = RunPublic.model_validate(resp.parsed)
    assert run.status == "failed" and run.error == LONG_ERROR and "Traceback" in run.traceback
    ok = (await get(client, f"/runs/{runs['ok']}")).parsed
    assert ok["best_epoch"] is not None and ok["best_value"] is not None and ok["final_loss"] == pytest.approx(2 / 12)
    assert len(ok["loss_history"]) == 12 and ok["val_loss_history"][0] == pytest.approx(1.5)
    assert ok["config"] == {"lr": 0.1, "layers": 3} and "recommendation" in ok["trends"]


async def test_non_finite_values_are_null_with_markers(client, runs):
    run = (await get(client, f"/runs/{runs['nan']}")).parsed
    assert run["loss_history"][1] is None and run["non_finite"]["loss_history[1]"] == "nan"
    assert run["non_finite"]["val_loss_history[1]"] == "+inf"
    assert run["final_loss"] is None and run["non_finite"]["final_loss"] == "nan"
    epochs = (await get(client, f"/runs/{runs['nan']}/epochs")).parsed
    assert epochs["epochs"][1]["metrics"] == {"train/loss": None, "val/loss": None}
    assert epochs["epochs"][1]["non_finite"] == {"train/loss": "nan", "val/loss": "+inf"}


async def test_epochs_since_metrics_and_downsampling(client, runs):
    url = f"/runs/{runs['ok']}/epochs"
    body = EpochsPublic.model_validate((await get(client, url)).parsed)
    assert [e.epoch for e in body.epochs] == list(range(12)) and body.last_epoch == 11
    newer = (await get(client, url, params={"since": 9})).parsed
    assert [e["epoch"] for e in newer["epochs"]] == [10, 11]
    only = (await get(client, url, params={"metrics": "val/loss"})).parsed
    assert all(set(e["metrics"]) == {"val/loss"} for e in only["epochs"])
    small = (await get(client, url, params={"max_points": 4})).parsed
    kept = [e["epoch"] for e in small["epochs"]]
    best = (await get(client, f"/runs/{runs['ok']}")).parsed["best_epoch"]
    assert small["downsampled"] and len(kept) == 4 and kept[0] == 0 and kept[-1] == 11 and best in kept
    again = (await get(client, url, params={"max_points": 4})).parsed
    assert again == small


async def test_best_and_system(client, runs):
    best = BestPublic.model_validate((await get(client, f"/runs/{runs['ok']}/best",
                                                params={"metric": "train/loss", "mode": "min"})).parsed)
    assert best.epoch.epoch == 11 and math.isclose(best.value, 2 / 12)
    worst = (await get(client, f"/runs/{runs['ok']}/best", params={"metric": "train/loss", "mode": "max"})).parsed
    assert worst["epoch"]["epoch"] == 0
    none = (await get(client, f"/runs/{runs['ok']}/best", params={"metric": "nope"})).parsed
    assert none["epoch"] is None
    system = SystemPublic.model_validate((await get(client, f"/runs/{runs['ok']}/system")).parsed)
    assert system.total == 5 and len(system.points) == 5
    assert system.points[0].values["cpu_percent"] == 10.0
    newer = (await get(client, f"/runs/{runs['ok']}/system", params={"since": system.points[2].seq})).parsed
    assert [p["seq"] for p in newer["points"]] == [p.seq for p in system.points[3:]]
    assert len((await get(client, f"/runs/{runs['ok']}/system", params={"max_points": 2})).parsed["points"]) == 2


async def test_listing_filters_and_cursor_pages(client, runs):
    page = RunsPagePublic.model_validate((await get(client, "/runs")).parsed)
    assert {r.run_id for r in page.runs} == set(runs.values()) and page.next_cursor is None
    started = [r.started_at for r in page.runs]
    assert started == sorted(started, reverse=True)
    seen, cursor = [], None
    while True:
        body = (await get(client, "/runs", params={"limit": 1, **({"cursor": cursor} if cursor else {})})).parsed
        seen += [r["run_id"] for r in body["runs"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [r.run_id for r in page.runs]
    nlp = (await get(client, "/runs", params={"project": "nlp"})).parsed["runs"]
    assert {r["run_id"] for r in nlp} == {runs["failed"], runs["live"]}
    failed = (await get(client, "/runs", params={"status": "failed"})).parsed["runs"]
    assert [r["run_id"] for r in failed] == [runs["failed"]]
    running = (await get(client, "/runs", params={"status": "running", "project": "nlp"})).parsed["runs"]
    assert [r["run_id"] for r in running] == [runs["live"]]


async def test_etag_304_and_changes_with_data(client, runs, publisher, redis_client, settings):
    url = f"/runs/{runs['live']}/epochs"
    first = await get(client, url)
    etag = first.headers["etag"]
    assert (await client.get(url, headers={"If-None-Match": etag})).status_code == 304
    summary = await get(client, f"/runs/{runs['live']}")
    assert (await client.get(f"/runs/{runs['live']}",
                             headers={"If-None-Match": summary.headers["etag"]})).status_code == 304
    from producer.run import Run
    run = Run(publisher, runs["live"], "nlp")
    run._seq = 100
    run.log_epoch(2, {"train/loss": 0.3, "val/loss": 0.4})
    assert publisher.flush(10)
    drain_all(redis_client, settings)
    changed = await get(client, url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [e["epoch"] for e in changed.parsed["epochs"]] == [0, 1, 2]
    assert (await client.get(f"/runs/{runs['live']}",
                             headers={"If-None-Match": summary.headers["etag"]})).status_code == 200
    # The run ends without a new epoch: its summary's ETag changes, its epochs' does not.
    before = await get(client, f"/runs/{runs['live']}")
    run.finish("completed", exit_code=0)
    assert publisher.flush(10)
    drain_all(redis_client, settings)
    finished = await get(client, f"/runs/{runs['live']}", headers={"If-None-Match": before.headers["etag"]})
    assert finished.status_code == 200 and finished.parsed["status"] == "completed"
    assert (await client.get(url, headers={"If-None-Match": changed.headers["etag"]})).status_code == 304


async def test_errors_are_clear(client, runs):
    missing = await get(client, "/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.parsed["detail"]
    assert (await get(client, "/runs/no-such-run/epochs")).status_code == 404
    assert (await get(client, "/runs/bad%20id!")).status_code == 422
    assert (await get(client, f"/runs/{runs['ok']}/epochs", params={"max_points": 1})).status_code == 422
    assert (await get(client, f"/runs/{runs['ok']}/epochs", params={"metrics": "bad name!"})).status_code == 422
    assert (await get(client, "/runs", params={"limit": 100000})).status_code == 422
    assert (await get(client, "/runs", params={"cursor": "garbage"})).status_code == 422
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        resp = await client.request(method, f"/runs/{runs['ok']}")
        assert resp.status_code == 405 and "read-only" in resp.json()["detail"]
    head = await client.head(f"/runs/{runs['ok']}")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"]


async def test_silent_running_run_reads_as_stale(client, publisher, redis_client, settings, runs):
    from datetime import UTC, datetime, timedelta

    from schemas.run_started import RunStartedV1

    old = datetime.now(UTC) - timedelta(hours=2)
    publisher.publish(RunStartedV1(event_id="silent:1", run_id="silent", seq=1, ts=old, project="nlp",
                                   name="silent", heartbeat_s=10.0))
    assert publisher.flush(10)
    drain_all(redis_client, settings)
    run = (await get(client, "/runs/silent")).parsed
    assert run["status"] == "stale" and run["stored_status"] == "running"
    stale = (await get(client, "/runs", params={"status": "stale"})).parsed["runs"]
    assert [r["run_id"] for r in stale] == ["silent"]
    running = (await get(client, "/runs", params={"status": "running"})).parsed["runs"]
    assert [r["run_id"] for r in running] == [runs["live"]]


async def test_system_flattens_gpu_figures(client, publisher, redis_client, settings):
    from producer import start_run
    from schemas.system import GpuSample

    run = start_run(project="gpu", publisher=publisher)
    for i in range(3):
        run.log_system(gpus=[GpuSample(index=0, name="H100", mem_allocated_mb=100.0 * i, utilization_pct=50.0),
                             GpuSample(index=1, mem_allocated_mb=float("nan"))], cpu_percent=5.0, rss_mb=10.0)
    assert publisher.flush(10)
    drain_all(redis_client, settings)
    points = (await get(client, f"/runs/{run.run_id}/system")).parsed["points"]
    assert [p["values"]["gpu0/mem_allocated_mb"] for p in points] == [0.0, 100.0, 200.0]
    assert points[0]["values"]["gpu0/utilization_pct"] == 50.0 and points[0]["values"]["cpu_percent"] == 5.0
    assert points[0]["values"]["gpu1/mem_allocated_mb"] is None
    assert points[0]["non_finite"] == {"gpu1/mem_allocated_mb": "nan"}
