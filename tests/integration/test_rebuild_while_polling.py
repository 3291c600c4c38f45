"""D7: pollers hammering a real uvicorn while `rebuild` swaps the read model, several times over."""

from __future__ import annotations

import threading
import time

import httpx

from query_api.encoding import strict_loads
from schemas.epoch import EpochV2
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from tests.conftest import ApiServer
from tests.draining import drain_all
from tests.integration.helpers import RawRun, xadd
from workers.rebuild import rebuild

RUNS, EPOCHS, REBUILDS = 6, 30, 4
POLL_BUDGET_S = 60.0  # a bound, never an assertion: the pollers stop when the rebuilds are done


class Poller(threading.Thread):
    """GETs /runs, /runs/{id} and /runs/{id}/epochs in turn (half of them conditional), noting every answer
    that is an error, an empty listing or a shorter history than the one published."""

    def __init__(self, base_url: str, ids: list[str], stop: threading.Event):
        super().__init__(daemon=True)
        self.base_url, self.ids, self.stop = base_url, ids, stop
        self.problems: list[str] = []
        self.answers = 0
        self.etags: set[str] = set()  # of /runs/{id}: one per read-model generation seen

    def check(self, path: str, response: httpx.Response) -> None:
        self.answers += 1
        if response.status_code == 304:
            return
        if response.status_code != 200:
            self.problems.append(f"{path}: {response.status_code} {response.text[:200]}")
            return
        body = strict_loads(response.content)
        if path == "/runs" and (body["total"] != RUNS or len(body["runs"]) != RUNS):
            self.problems.append(f"/runs: total {body['total']}, {len(body['runs'])} listed")
        elif path.endswith("/epochs") and [e["epoch"] for e in body["epochs"]] != list(range(EPOCHS)):
            self.problems.append(f"{path}: {len(body['epochs'])} epochs")
        elif path.count("/") == 2 and (body["epochs"] != EPOCHS or len(body["loss_history"]) != EPOCHS):
            self.problems.append(f"{path}: {body['epochs']} epochs, {len(body['loss_history'])} losses")

    def run(self) -> None:
        etags: dict[str, str] = {}
        deadline = time.monotonic() + POLL_BUDGET_S
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            n = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                run_id = self.ids[n % len(self.ids)]
                for path in ("/runs", f"/runs/{run_id}", f"/runs/{run_id}/epochs"):
                    headers = {"If-None-Match": etags[path]} if n % 2 and path in etags else {}
                    response = http.get(path, headers=headers)
                    self.check(path, response)
                    if "etag" in response.headers:
                        etags[path] = response.headers["etag"]
                        if path == f"/runs/{self.ids[0]}":
                            self.etags.add(response.headers["etag"])
                n += 1


def test_pollers_never_see_a_404_an_error_an_empty_listing_or_a_shorter_history_during_rebuilds(
        settings, redis_client):
    events = []
    for i in range(RUNS):
        run = RawRun(f"p{i}")
        events.append(run.event(RunStartedV2, project="d7"))
        events.extend(run.event(EpochV2, epoch=e, metrics={"train/loss": 1.0 / (e + 1), "val/loss": 2.0 / (e + 1)})
                      for e in range(EPOCHS))
        events.append(run.event(RunFinishedV2, status="completed"))
    xadd(redis_client, settings, events)
    drain_all(redis_client, settings)
    ids = [f"p{i}" for i in range(RUNS)]
    api = ApiServer(settings)
    stop = threading.Event()
    pollers = [Poller(api.base_url, ids[k:] + ids[:k], stop) for k in range(3)]
    try:
        for poller in pollers:
            poller.start()
        while sum(p.answers for p in pollers) < 30:  # everyone is polling before the first swap
            time.sleep(0.05)
        for _ in range(REBUILDS):
            assert rebuild(settings) == RUNS
            time.sleep(0.2)
    finally:
        stop.set()
        for poller in pollers:
            poller.join(timeout=60)
        api.stop()
    problems = [p for poller in pollers for p in poller.problems]
    assert problems == [], problems[:20]
    assert all(poller.answers > 30 for poller in pollers)
    assert max(len(poller.etags) for poller in pollers) >= 3  # the pollers did read across several swaps
