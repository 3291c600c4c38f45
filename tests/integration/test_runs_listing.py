"""GET /runs against a real uvicorn: every filter, every sort, cursors that walk all pages exactly once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from schemas.epoch import EpochV2
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from tests.conftest import ApiServer
from tests.draining import drain_all
from tests.integration.helpers import RawRun, get_json, walk_runs, xadd

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Spec:
    run_id: str
    project: str
    name: str | None
    age_s: int  # how long ago it started: the newest/oldest order
    val: tuple[float, ...] = ()  # val/loss per epoch: best = the lowest
    status: str = "completed"  # `running` runs: `stale` when their last event is old
    tags: tuple[str, ...] = ()
    heartbeat_s: float | None = None

    @property
    def best(self) -> float | None:
        return min(self.val) if self.val else None

    @property
    def shown_status(self) -> str:
        silent_for = max(3 * (self.heartbeat_s or 0.0), 60.0)  # the read model's staleness rule
        return "stale" if self.status == "running" and self.age_s > silent_for else self.status


SPECS = [
    Spec("a-res-1", "alpha", "resnet-1", 1000, (0.9, 0.8, 0.7, 0.75, 0.8), tags=("gpu",)),
    Spec("a-res-2", "alpha", "resnet-2", 900, (0.9, 0.7, 0.6, 0.5, 0.55, 0.6, 0.6, 0.7), "failed", ("gpu", "long")),
    Spec("a-vit-1", "alpha", "vit-1", 800, (1.0, 0.7, 0.8, 0.9, 0.95), tags=("cpu",)),  # best ties a-res-1
    Spec("b-res-3", "beta", "resnet-3", 700, (0.9, 0.95, 1.0), "interrupted", ("gpu",)),
    Spec("b-mlp-1", "beta", "MLP-big", 600),  # no epochs: no best value
    Spec("b-mlp-2", "beta", "mlp-small", 600, (1.3, 1.2, 1.25, 1.3, 1.4), tags=("cpu",)),  # starts with b-mlp-1
    Spec("a-live", "alpha", "resnet-live", 5, (0.7, 0.6), "running", ("gpu",), heartbeat_s=600.0),
    Spec("a-stale", "alpha", "vit-stale", 3600, (0.8, 0.7, 0.66, 0.65), "running", ("cpu",), heartbeat_s=10.0),
    Spec("b-none", "beta", None, 500, (), "running"),
    *(Spec(f"c{i}", "gamma", f"sweep-{i}", 400 - 100 * i, (0.5, best, 0.6, 0.6, 0.7), tags=("sweep",))
      for i, best in enumerate((0.3, 0.3, 0.4))),
]
SORTS = {  # the order each sort promises: (key, descending)
    "newest": (lambda s: (-s.age_s, s.run_id), True),
    "oldest": (lambda s: (-s.age_s, s.run_id), False),
    "best": (lambda s: (math.inf if s.best is None else s.best, s.run_id), False),
    "best_desc": (lambda s: (math.inf if s.best is None else -s.best, s.run_id), False),
    "epochs": (lambda s: (len(s.val), s.run_id), True),
}
FILTERS = {  # query parameters -> which runs match
    "all": ({}, lambda s: True),
    "project": ({"project": "alpha"}, lambda s: s.project == "alpha"),
    "completed": ({"status": "completed"}, lambda s: s.shown_status == "completed"),
    "failed": ({"status": "failed"}, lambda s: s.shown_status == "failed"),
    "interrupted": ({"status": "interrupted"}, lambda s: s.shown_status == "interrupted"),
    "running": ({"status": "running"}, lambda s: s.shown_status == "running"),
    "stale": ({"status": "stale"}, lambda s: s.shown_status == "stale"),
    "tag": ({"tag": "gpu"}, lambda s: "gpu" in s.tags),
    "name prefix": ({"name": "resnet"}, lambda s: (s.name or "").startswith("resnet")),
    "name prefix is case-sensitive": ({"name": "MLP"}, lambda s: (s.name or "").startswith("MLP")),
    "q": ({"q": "mlp"}, lambda s: "mlp" in f"{s.name or ''} {s.run_id}".lower()),
    "q in a run id": ({"q": "C1"}, lambda s: "c1" in f"{s.name or ''} {s.run_id}".lower()),
    "combined": ({"project": "alpha", "tag": "gpu", "status": "completed"},
                 lambda s: s.project == "alpha" and "gpu" in s.tags and s.shown_status == "completed"),
    "nothing": ({"project": "nope"}, lambda s: False),
}


def events(spec: Spec) -> list:
    run = RawRun(spec.run_id, ts=NOW - timedelta(seconds=spec.age_s + 1))
    out = [run.event(RunStartedV2, project=spec.project, name=spec.name, tags=list(spec.tags),
                     heartbeat_s=spec.heartbeat_s)]
    out += [run.event(EpochV2, epoch=e, metrics={"train/loss": v * 2, "val/loss": v}) for e, v in enumerate(spec.val)]
    if spec.status != "running":
        out.append(run.event(RunFinishedV2, status=spec.status, error="boom" if spec.status == "failed" else None))
    return out


def test_runs_listing_filters_sorts_and_cursors(settings, redis_client):
    xadd(redis_client, settings, [e for spec in SPECS for e in events(spec)])
    drain_all(redis_client, settings)
    api = ApiServer(settings)  # one server for both checks: starting one is most of this test's time
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            check_every_filter_and_sort_walks_all_pages_exactly_once_in_order(http)
            check_a_cursor_works_only_with_its_own_sort_and_garbage_is_a_422(http)
    finally:
        api.stop()


def check_every_filter_and_sort_walks_all_pages_exactly_once_in_order(http: httpx.Client) -> None:
    # Every filter with two sorts, every sort with three filters (the pure tests take every combination).
    combinations = {(sort, name) for sort in ("newest", "best") for name in FILTERS}
    combinations |= {(sort, name) for sort in SORTS for name in ("all", "project", "stale")}
    for sort, name in sorted(combinations):
        key, descending = SORTS[sort]
        params, matches = FILTERS[name]
        expected = [s.run_id for s in sorted(filter(matches, SPECS), key=key, reverse=descending)]
        items, total = walk_runs(http, page=2, sort=sort, **params)
        assert [i["run_id"] for i in items] == expected, (sort, name)
        assert total == len(expected), (sort, name)
    items, _ = walk_runs(http, page=50)
    by_id = {spec.run_id: spec for spec in SPECS}
    for item in items:
        spec = by_id[item["run_id"]]
        assert (item["project"], item["name"], item["status"], item["epochs"], item["best_value"],
                sorted(item["tags"])) == (spec.project, spec.name, spec.shown_status, len(spec.val), spec.best,
                                          sorted(spec.tags)), spec


def check_a_cursor_works_only_with_its_own_sort_and_garbage_is_a_422(http: httpx.Client) -> None:
    first = get_json(http, "/runs", limit=2, sort="best")
    assert first["next_cursor"]
    assert http.get("/runs", params={"limit": 2, "sort": "best", "cursor": first["next_cursor"]}).status_code == 200
    for sort in ("newest", "oldest", "best_desc", "epochs"):
        response = http.get("/runs", params={"limit": 2, "sort": sort, "cursor": first["next_cursor"]})
        assert response.status_code == 422, (sort, response.text)
        assert "cursor" in response.text
    for garbage in ("abc", "W10", "x" * 1000, "!!", "W1tbW1tbW1tbW1tbW1tbW1tb"):
        response = http.get("/runs", params={"cursor": garbage})
        assert response.status_code == 422, (garbage, response.status_code, response.text)
    # runs that start meanwhile never shift later pages: the cursor is the last row's key, not an offset
    page = get_json(http, "/runs", limit=3, sort="oldest")
    rest = get_json(http, "/runs", limit=100, sort="oldest", cursor=page["next_cursor"])
    assert [i["run_id"] for i in page["runs"] + rest["runs"]] == \
        [s.run_id for s in sorted(SPECS, key=SORTS["oldest"][0])]
