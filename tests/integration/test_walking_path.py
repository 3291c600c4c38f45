"""One path end to end on real parts: producer -> Redis stream -> RQ worker -> Parquet -> uvicorn API."""

from __future__ import annotations

import math

import httpx
import pyarrow.dataset as ds
from rq import Worker

from producer import Publisher, start_run
from workers.scheduling import drain_queue, enqueue_drain

VAL_LOSSES = [1.0, 0.7, 0.45, 0.5, 0.62, float("nan")]


def test_publish_drain_serve(settings, redis_client, api_server):
    publisher = Publisher(settings)
    with start_run(project="walk", name="w1", config={"lr": 0.1}, publisher=publisher) as run:
        for epoch, val in enumerate(VAL_LOSSES):
            run.log_epoch(epoch, {"train/loss": 2.0 / (epoch + 1), "val/loss": val}, samples=100)
    assert publisher.flush(10)
    publisher.close()

    stream_len = sum(redis_client.xlen(s) for s in (f"{settings.namespace}:events:{{{p}}}" for p in range(4)))
    assert stream_len == len(VAL_LOSSES) + 2  # run_started + epochs + run_finished

    for partition in range(settings.partitions):
        enqueue_drain(redis_client, settings, settings.redis_url, partition)
    Worker([drain_queue(redis_client, settings)], connection=redis_client).work(burst=True)

    log = ds.dataset(settings.data_dir / "log" / "epoch", format="parquet").to_table()
    assert sorted(log.column("epoch").to_pylist()) == list(range(len(VAL_LOSSES)))

    response = httpx.get(f"{api_server.base_url}/runs/{run.run_id}/epochs")
    epochs = response.json()
    unchanged = httpx.get(f"{api_server.base_url}/runs/{run.run_id}/epochs",
                          headers={"If-None-Match": response.headers["etag"]})
    assert unchanged.status_code == 304
    assert [e["epoch"] for e in epochs["epochs"]] == list(range(len(VAL_LOSSES)))
    assert epochs["epochs"][-1]["metrics"]["val/loss"] is None
    assert epochs["epochs"][-1]["non_finite"] == {"val/loss": "nan"}
    assert math.isclose(epochs["epochs"][2]["metrics"]["val/loss"], 0.45)

    newer = httpx.get(f"{api_server.base_url}/runs/{run.run_id}/epochs", params={"since": 3}).json()
    assert [e["epoch"] for e in newer["epochs"]] == [4, 5]

    best = httpx.get(f"{api_server.base_url}/runs/{run.run_id}/best",
                     params={"metric": "val/loss", "mode": "min"}).json()
    assert best["epoch"]["epoch"] == 2
    assert best["epoch"]["metrics"]["train/loss"] == 2.0 / 3

    missing = httpx.get(f"{api_server.base_url}/runs/no-such-run/best")
    assert missing.status_code == 404
    assert "no-such-run" in missing.json()["detail"]
