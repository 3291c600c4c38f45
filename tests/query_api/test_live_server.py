"""The API in a real uvicorn process while a worker ingests, polled concurrently by several clients.

Every answer must be < 500 and strict JSON; `since` polls and long polls must together see every epoch
exactly once and in order; conditional polls must get 304 only while nothing changed.
"""

from __future__ import annotations

import threading
import time

import httpx

from producer.run import Run
from query_api.encoding import strict_loads
from tests.draining import drain_all
from tests.query_api.pipeline import make_run

EPOCHS = 40


def test_concurrent_polls_while_ingesting(settings, publisher, redis_client, api_server):
    run = make_run(publisher, "live", [], finish=None)
    drain_all(redis_client, settings)
    base = f"{api_server.base_url}/runs/{run.run_id}"
    stop = threading.Event()
    problems: list[str] = []
    seen: dict[str, list[int]] = {"since": [], "longpoll": []}
    statuses: list[int] = []

    def check(resp: httpx.Response) -> object:
        statuses.append(resp.status_code)
        if resp.status_code >= 500:
            problems.append(f"{resp.request.url} -> {resp.status_code}: {resp.text[:200]}")
        if resp.status_code == 304:
            return None
        return strict_loads(resp.content)  # raises on NaN/Infinity

    def ingest() -> None:
        writer = Run(publisher, run.run_id, "live")
        writer._seq = 1
        for epoch in range(EPOCHS):
            bad = float("nan") if epoch % 7 == 3 else (float("inf") if epoch % 11 == 5 else 1.0 / (epoch + 1))
            writer.log_epoch(epoch, {"train/loss": bad, "val/loss": 2.0 / (epoch + 1)}, samples=10)
            writer.log_system(cpu_percent=float(epoch), rss_mb=100.0)
            publisher.flush(10)
            drain_all(redis_client, settings)
        writer.finish("completed", exit_code=0)
        publisher.flush(10)
        drain_all(redis_client, settings)

    def since_poller(kind: str, wait: float | None) -> None:
        with httpx.Client(timeout=40) as client:
            last, etag = -1, None
            while True:
                params = {"since": last, **({"wait": wait} if wait else {})}
                resp = client.get(f"{base}/epochs", params=params, headers={"If-None-Match": etag} if etag else {})
                body = check(resp)
                if body is not None and resp.status_code == 200:
                    etag = resp.headers["etag"]
                    new = [e["epoch"] for e in body["epochs"]]
                    seen[kind].extend(new)
                    last = new[-1] if new else last
                if last == EPOCHS - 1 or (stop.is_set() and resp.status_code == 304):
                    return

    def other_poller() -> None:
        with httpx.Client(timeout=10) as client:
            etags: dict[str, str] = {}
            while not stop.is_set():
                for path in ("", "/epochs", "/best", "/system?max_points=5", "/epochs?max_points=3"):
                    url = base + path
                    resp = client.get(url, headers={"If-None-Match": etags[url]} if url in etags else {})
                    check(resp)
                    etags[url] = resp.headers.get("etag", "")
                check(client.get(f"{api_server.base_url}/runs", params={"limit": 5}))

    def recorded(target, *args) -> threading.Thread:
        """A poller thread whose exception (a non-strict body, a failed request) fails the test."""
        def run() -> None:
            try:
                target(*args)
            except Exception as exc:  # noqa: BLE001 - reported below, with what it was
                problems.append(f"{target.__name__}{args}: {type(exc).__name__}: {exc}")
        return threading.Thread(target=run)

    threads = [recorded(since_poller, "since", None), recorded(since_poller, "longpoll", 10),
               recorded(other_poller), recorded(other_poller)]
    for t in threads:
        t.start()
    ingest()
    deadline = time.monotonic() + 60
    for t in threads[:2]:
        t.join(max(0.1, deadline - time.monotonic()))
    stop.set()
    for t in threads:
        t.join(30)

    assert not problems, problems[:5]
    assert seen["since"] == list(range(EPOCHS))
    assert seen["longpoll"] == list(range(EPOCHS))
    assert 304 in statuses and 200 in statuses

    with httpx.Client() as client:  # after the dust settles: the data is all there, and 304 holds
        final = client.get(f"{base}/epochs")
        body = strict_loads(final.content)
        assert [e["epoch"] for e in body["epochs"]] == list(range(EPOCHS))
        assert body["epochs"][3]["non_finite"] == {"train/loss": "nan"}
        assert client.get(f"{base}/epochs", headers={"If-None-Match": final.headers["etag"]}).status_code == 304
        summary = strict_loads(client.get(base).content)
        assert summary["status"] == "completed" and summary["epochs"] == EPOCHS
