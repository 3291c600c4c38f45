"""`ema=` on /epochs and /steps (real pipeline, in-process app): smoothed over every stored point, then
filtered by `since` and downsampled, so a smoothed curve never depends on how the answer was thinned."""

from __future__ import annotations

import math
import random

import pytest

from producer import start_run
from query_api.encoding import strict_loads
from query_api.models import EpochsPublic, StepsPublic
from tests.draining import drain_all

pytestmark = pytest.mark.anyio
W = 0.8
STEPS = 3000


@pytest.fixture
def anyio_backend():
    return "asyncio"


def reference(xs: list[float], w: float) -> list[float]:
    """The debiased EMA written out (TensorBoard's smoothing), NaN passed through without being folded in."""
    out, last, n = [], 0.0, 0
    for x in xs:
        if not math.isfinite(x):
            out.append(x)
            continue
        last, n = last * w + (1 - w) * x, n + 1
        out.append(last / (1 - w ** n))
    return out


@pytest.fixture
def run_id(publisher, redis_client, settings):
    rng = random.Random(3)
    run = start_run(project="smooth", name="noisy", publisher=publisher)
    for step in range(STEPS):
        metrics = {"train/loss": 2.0 / math.sqrt(1 + step) + rng.gauss(0, 0.2)}
        if step % 100 == 0:
            metrics["val/loss"] = 1.0 + rng.gauss(0, 0.1)  # a sparser metric, smoothed over its own points
        run.log_step(step, metrics)
    for epoch in range(40):
        val = math.nan if epoch == 20 else 1.0 / (epoch + 1) + rng.gauss(0, 0.05)
        run.log_epoch(epoch, {"train/loss": 1.5 / (epoch + 1) + rng.gauss(0, 0.05), "val/loss": val}, samples=10)
    run.finish("completed")
    assert publisher.flush(20)
    drain_all(redis_client, settings)
    return run.run_id


async def get(client, url):
    resp = await client.get(url)
    assert resp.status_code == 200, resp.text
    return strict_loads(resp.content)


def values(rows, name, x="epoch"):
    out = {}
    for r in rows:
        if name in r["non_finite"]:
            out[r[x]] = math.nan
        elif name in r["metrics"]:
            out[r[x]] = r["metrics"][name]
    return out


async def test_epochs_are_smoothed_over_every_stored_epoch_whatever_since_and_max_points(client, run_id):
    raw = (await get(client, f"/runs/{run_id}/epochs"))["epochs"]
    assert (await get(client, f"/runs/{run_id}/epochs"))["ema"] is None
    body = await get(client, f"/runs/{run_id}/epochs?ema={W}")
    EpochsPublic.model_validate(body)
    assert body["ema"] == W
    for name in ("train/loss", "val/loss"):
        expected = dict(zip(values(raw, name), reference(list(values(raw, name).values()), W), strict=True))
        got = values(body["epochs"], name)
        assert got.keys() == expected.keys()
        for epoch, v in got.items():
            assert (math.isnan(v) and math.isnan(expected[epoch])) or v == pytest.approx(expected[epoch], rel=1e-12)
        # `since` sends only later epochs, smoothed with all the history before them.
        later = values((await get(client, f"/runs/{run_id}/epochs?ema={W}&since=29"))["epochs"], name)
        assert sorted(later) == list(range(30, 40)) and all(later[e] == pytest.approx(got[e]) for e in later)
        # Downsampled: fewer epochs, each with the value of the full-resolution smoothed curve.
        thin = await get(client, f"/runs/{run_id}/epochs?ema={W}&max_points=8")
        assert thin["downsampled"] and len(thin["epochs"]) <= 8
        for epoch, v in values(thin["epochs"], name).items():
            assert (math.isnan(v) and math.isnan(got[epoch])) or v == pytest.approx(got[epoch])


async def test_steps_are_smoothed_over_every_row_then_downsampled_per_metric(client, run_id):
    rows = (await get(client, f"/runs/{run_id}/steps?limit={STEPS}"))["steps"]
    assert len(rows) == STEPS
    body = await get(client, f"/runs/{run_id}/steps?ema={W}&max_points=200")
    StepsPublic.model_validate(body)
    assert body["downsampled"] and body["ema"] == W and body["total"] == STEPS
    for name, kept in (("train/loss", 200), ("val/loss", STEPS // 100)):
        column = values(rows, name, "step")
        full = dict(zip(column, reference(list(column.values()), W), strict=True))
        got = values(body["steps"], name, "step")
        assert len(got) == kept  # per metric: the sparse one keeps all of its 30 points
        assert min(got) == 0 and max(got) == max(column)  # first and last kept
        for step, v in got.items():
            assert v == pytest.approx(full[step], rel=1e-12)  # the EMA of every row, not of the kept ones
        # The smoothed curve is not the raw one thinned.
        raw = values((await get(client, f"/runs/{run_id}/steps?max_points=200"))["steps"], name, "step")
        assert any(raw[s] != pytest.approx(v) for s, v in got.items() if s in raw and s > 0)
    paged = await get(client, f"/runs/{run_id}/steps?ema={W}&since=2989&limit=5")
    assert [r["step"] for r in paged["steps"]] == [2990, 2991, 2992, 2993, 2994] and paged["next_since"] == 2994
    column = values(rows, "train/loss", "step")
    full = reference(list(column.values()), W)
    assert paged["steps"][0]["metrics"]["train/loss"] == pytest.approx(full[2990])


@pytest.mark.parametrize("bad", ["0", "1", "-0.5", "nan", "inf", "x"])
async def test_a_weight_outside_0_1_is_a_422(client, run_id, bad):
    for route in ("epochs", "steps"):
        resp = await client.get(f"/runs/{run_id}/{route}?ema={bad}")
        assert resp.status_code == 422, (route, bad, resp.text)


async def test_a_run_too_long_to_smooth_is_refused_with_what_to_do(client, run_id, monkeypatch):
    import query_api.routes.series as routes

    monkeypatch.setattr(routes, "EMA_MAX_STEPS", STEPS - 1)  # the real limit is 200,000 steps
    resp = await client.get(f"/runs/{run_id}/steps?ema={W}&max_points=100")
    assert resp.status_code == 422
    message = resp.json()["detail"][0]["msg"]
    assert f"{STEPS:,} steps" in message and "without `ema`" in message
    assert (await client.get(f"/runs/{run_id}/steps?max_points=100")).status_code == 200
