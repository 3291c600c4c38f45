"""The typed client against a real uvicorn over a real pipeline: what was logged comes back bit for bit
(NaN and infinities restored), Arrow and JSON agree, and `follow` yields each new epoch exactly once."""

from __future__ import annotations

import math
import threading
import time

import pyarrow as pa
import pytest

from epochstream.client import ApiError, Client, UnknownRun
from producer import Publisher, start_run
from tests.draining import drain_all

VALUES = [0.9, 0.5, float("nan"), 0.25, float("inf"), 1e-300, -float("inf")]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture
def logged(settings, redis_client):
    publisher = Publisher(settings)
    with start_run(project="client", name="c", config={"lr": 0.1}, tags=["x"], publisher=publisher) as run:
        for e, v in enumerate(VALUES):
            run.log_epoch(e, {"train/loss": v, "val/loss": 1.0 + e / 7})
        for s in range(250):
            run.log_step(s, {"train/loss": VALUES[s % len(VALUES)], "lr": s / 1000})
    assert publisher.flush(10)
    publisher.close()
    drain_all(redis_client, settings)
    return run.run_id


def test_history_is_what_was_logged_and_arrow_equals_json(api_server, logged):
    with Client(api_server.base_url) as client:
        table = client.history([logged], kind="epoch")
        assert table.column_names == ["run_id", "epoch", "metric", "value"]
        got = {(r["epoch"], r["metric"]): r["value"] for r in table.to_pylist()}
        for e, v in enumerate(VALUES):
            assert same(got[(e, "train/loss")], v) and got[(e, "val/loss")] == 1.0 + e / 7
        assert len(got) == 2 * len(VALUES)
        body = client.get(f"/runs/{logged}/epochs")  # the JSON path, markers restored by hand
        from epochstream.client import restore

        from_json = {(item["epoch"], k): v for item in body["epochs"] for k, v in restore(item).items()}
        assert from_json.keys() == got.keys() and all(same(from_json[k], got[k]) for k in got)
        steps = client.history(logged, kind="step", metrics=["train/loss"])
        assert steps.num_rows == 250 and set(steps.column("metric").to_pylist()) == {"train/loss"}
        assert all(same(v, VALUES[s % len(VALUES)]) for s, v in zip(steps.column("step").to_pylist(),
                                                                     steps.column("value").to_pylist(), strict=True))
        curve = client.history(logged, kind="step", max_points=20)
        assert 0 < len(pa.compute.unique(curve.column("step"))) <= 40  # per metric at most 20


def test_runs_best_and_errors(api_server, logged):
    with Client(api_server.base_url) as client:
        runs = client.runs(project="client")
        assert [r.run_id for r in runs] == [logged] and runs[0].status == "completed" and runs[0].tags == ["x"]
        assert client.runs_table(project="client").num_rows == 1
        full = client.run(logged)
        assert full.config == {"lr": 0.1} and full.epochs == len(VALUES) and full.steps == 250
        best = client.best(logged, metric="train/loss", mode="min")
        assert (best["epoch"], best["value"]) == (5, 1e-300) and best["metrics"]["val/loss"] == 1.0 + 5 / 7
        with pytest.raises(UnknownRun):
            client.run("no-such-run")
        with pytest.raises(ApiError):
            client.history(logged, max_points=1)  # below the API's minimum: a 422 becomes our error


def test_follow_yields_each_new_epoch_exactly_once(api_server, settings, redis_client):
    publisher = Publisher(settings)
    run = start_run(project="follow", publisher=publisher)
    run.log_epoch(0, {"train/loss": 1.0})
    assert publisher.flush(10)
    drain_all(redis_client, settings)
    seen: list[int] = []
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            with Client(api_server.base_url) as client:
                seen.extend(e["epoch"] for e in client.follow(run.run_id, wait=2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=follow)
    thread.start()
    for epoch in range(1, 6):  # a training that goes on while the client follows it
        run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)})
        run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}) if epoch == 3 else None  # a re-logged epoch
        assert publisher.flush(10)
        drain_all(redis_client, settings)
        time.sleep(0.3)
    run.finish("completed")
    assert publisher.flush(10)
    drain_all(redis_client, settings)
    publisher.close()
    thread.join(timeout=60)
    assert not errors and not thread.is_alive()
    assert seen == [0, 1, 2, 3, 4, 5]
