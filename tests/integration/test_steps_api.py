"""Step metrics end to end on real parts: `run.log_step` -> Redis -> drain -> read model -> uvicorn.

A run of 20,000 steps: the downsampled curve keeps what matters and is the same every time, values come back
bit for bit, `since=` and the `limit` / `next_since` pages see every step once. A resumed run that rewinds:
the steps it hides are gone from the API and from the `steps` SQL view alike.
"""

from __future__ import annotations

import math
import struct

import httpx

from producer import Publisher, start_run
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from schemas.step import StepV1
from tests.conftest import ApiServer
from tests.draining import drain_all
from tests.integration.helpers import RawRun, get_json, xadd
from workers.catalog import query

STEPS, MAX_POINTS = 20_000, 500
SPECIAL = {"train/loss": {4321: -5.0, 15000: 50.0, 7777: math.nan, 9999: math.nan},  # min, max, NaN twice
           "lr": {3000: -1.0, 17000: 9.0, 12345: math.inf}}


def logged(step: int) -> dict[str, float]:
    metrics = {"train/loss": 1.0 + 0.5 * math.sin(step * 0.37) + step * 1e-5,
               "lr": 1e-3 * (1.0 + math.cos(step / 777.0))}
    for name, values in SPECIAL.items():
        if step in values:
            metrics[name] = values[step]
    return metrics


def bits(value: float | None) -> bytes | None:
    return None if value is None else struct.pack("<d", value)


def same(received: float | None, marker: str | None, sent: float) -> bool:
    """A value in a strict JSON answer equals, bit for bit, the float that was logged."""
    if math.isnan(sent):
        return received is None and marker == "nan"
    if math.isinf(sent):
        return received is None and marker == ("+inf" if sent > 0 else "-inf")
    return marker is None and bits(received) == bits(sent)


def per_metric(body: dict) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for item in body["steps"]:
        for name in item["metrics"]:
            out.setdefault(name, []).append(item["step"])
    return out


def must_keep(name: str) -> set[int]:
    """First, last, min, max (finite values) and first non-finite step of a metric, from what was logged."""
    series = [(s, logged(s)[name]) for s in range(STEPS)]
    finite = [(v, s) for s, v in series if math.isfinite(v)]
    first_bad = next(s for s, v in series if not math.isfinite(v))
    return {0, STEPS - 1, min(finite)[1], max(finite)[1], first_bad}


def resumed_events() -> list:
    """Attempt one logs steps 0..99 (values 1000 + step) and is interrupted; attempt two resumes from a
    checkpoint at step 50 and logs 50..79 (values step / 100): it hides attempt one's steps 50..99."""
    run = RawRun("resumed")
    events = [run.event(RunStartedV2, project="steps")]
    events += [run.event(StepV1, step=s, metrics={"train/loss": 1000.0 + s}) for s in range(100)]
    events += [run.event(RunFinishedV2, status="interrupted"), run.event(RunStartedV2, project="steps", resume=True)]
    events += [run.event(StepV1, step=s, metrics={"train/loss": s / 100}) for s in range(50, 80)]
    return events


def resumed_values(step: int) -> float:
    return 1000.0 + step if step < 50 else step / 100


def test_long_step_series_downsampled_paged_and_resumed(settings, redis_client):
    publisher = Publisher(settings)
    with start_run(project="steps", name="long", run_id="long", publisher=publisher) as run:
        for step in range(STEPS):
            run.log_step(step, logged(step), epoch=step // 1000)
    assert publisher.flush(60)
    publisher.close()
    xadd(redis_client, settings, resumed_events())
    assert drain_all(redis_client, settings) == (STEPS + 2 + len(resumed_events()), 0)

    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=60) as http:
            check_downsampled(http)
            check_since_and_pages(http)
            check_resumed(http)
    finally:
        api.stop()
    rows = query(settings, "SELECT step, map_extract(metrics, 'train/loss')[1] AS v FROM steps "
                           "WHERE run_id = 'resumed' ORDER BY step").to_pylist()
    assert [(r["step"], r["v"]) for r in rows] == [(s, resumed_values(s)) for s in range(80)]
    assert query(settings, "SELECT count(*) AS n, count(DISTINCT step) AS d FROM steps WHERE run_id = 'long'"
                 ).to_pylist() == [{"n": STEPS, "d": STEPS}]


def check_downsampled(http: httpx.Client) -> None:
    body = get_json(http, "/runs/long/steps", max_points=MAX_POINTS)
    assert body["downsampled"] is True and body["total"] == STEPS and body["next_since"] is None
    kept = per_metric(body)
    assert set(kept) == {"train/loss", "lr"}
    for name, steps in kept.items():
        assert len(steps) <= MAX_POINTS, (name, len(steps))
        assert must_keep(name) <= set(steps), (name, sorted(must_keep(name) - set(steps)))
    for item in body["steps"]:
        for name, value in item["metrics"].items():
            assert same(value, item["non_finite"].get(name), logged(item["step"])[name]), (item, name)
    # The same answer again, past the server's response cache (a `limit` that max_points ignores).
    again = get_json(http, "/runs/long/steps", max_points=MAX_POINTS, limit=4999)
    assert again["steps"] == body["steps"]
    newer = get_json(http, "/runs/long/steps", max_points=MAX_POINTS, since=STEPS - 3000)
    assert newer["steps"] and min(i["step"] for i in newer["steps"]) > STEPS - 3000
    assert {STEPS - 2999, STEPS - 1} <= {i["step"] for i in newer["steps"]}


def check_since_and_pages(http: httpx.Client) -> None:
    tail = get_json(http, "/runs/long/steps", since=STEPS - 11)
    assert [i["step"] for i in tail["steps"]] == list(range(STEPS - 10, STEPS)) and tail["next_since"] is None
    assert get_json(http, "/runs/long/steps", since=STEPS - 1)["steps"] == []
    seen: list[int] = []
    since, pages = None, 0
    while True:
        page = get_json(http, "/runs/long/steps", limit=3000, **({} if since is None else {"since": since}))
        pages += 1
        assert page["downsampled"] is False and len(page["steps"]) <= 3000
        for item in page["steps"]:
            sent = logged(item["step"])
            assert item["metrics"].keys() == sent.keys() and item["epoch"] == item["step"] // 1000
            assert all(same(v, item["non_finite"].get(k), sent[k]) for k, v in item["metrics"].items()), item
        seen += [i["step"] for i in page["steps"]]
        since = page["next_since"]
        if since is None:
            break
        assert since == seen[-1]
    assert seen == list(range(STEPS)) and pages == math.ceil(STEPS / 3000)


def check_resumed(http: httpx.Client) -> None:
    run = get_json(http, "/runs/resumed")
    assert (run["steps"], run["last_step"], len(run["attempts"])) == (80, 79, 2)
    rows = get_json(http, "/runs/resumed/steps")["steps"]
    assert [(i["step"], i["metrics"]["train/loss"]) for i in rows] == [(s, resumed_values(s)) for s in range(80)]
    thin = get_json(http, "/runs/resumed/steps", max_points=10)
    assert thin["downsampled"] is True and thin["total"] == 80
    values = {i["step"]: i["metrics"]["train/loss"] for i in thin["steps"]}
    assert all(v == resumed_values(s) for s, v in values.items()), values  # nothing from the hidden steps
    assert {0, 79, 49, 50} <= set(values)  # first, last, max (1049.0), min (0.5)
