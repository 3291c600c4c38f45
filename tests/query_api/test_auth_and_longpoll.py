"""Bearer token, and long polls that answer as soon as new epochs land (in-process app, real pipeline)."""

from __future__ import annotations

import anyio
import httpx
import pytest
from pydantic import SecretStr

from producer.run import Run
from query_api.app import create_app
from tests.conftest import READ_MODELS, with_read_model
from tests.draining import drain_all
from tests.query_api.pipeline import losses, make_run

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=READ_MODELS)
def settings(request, settings):
    return with_read_model(request, settings)  # every test here on SQLite and on PostgreSQL


async def test_bearer_token_guards_all_but_healthz(settings, publisher, redis_client):
    run = make_run(publisher, "p", losses(2))
    drain_all(redis_client, settings)
    app = create_app(settings.model_copy(update={"api_token": SecretStr("s3cret")}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        assert (await c.get("/healthz")).status_code == 200
        for url in ("/runs", f"/runs/{run.run_id}", f"/runs/{run.run_id}/epochs"):
            denied = await c.get(url)
            assert denied.status_code == 401 and "EPOCHSTREAM_API_TOKEN" in denied.json()["detail"]
            assert denied.headers["www-authenticate"] == "Bearer"
            assert (await c.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
            good = await c.get(url, headers={"Authorization": "Bearer s3cret"})
            assert good.status_code == 200
            # The 304 fast path must not leak "unchanged" to a client without the token.
            assert (await c.get(url, headers={"If-None-Match": good.headers["etag"]})).status_code == 401
            assert (await c.get(url, headers={"If-None-Match": good.headers["etag"],
                                              "Authorization": "Bearer s3cret"})).status_code == 304


async def test_bearer_token_guards_the_api_reference_too(settings):
    app = create_app(settings.model_copy(update={"api_token": SecretStr("s3cret")}))
    good = {"Authorization": "Bearer s3cret"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        for url in ("/openapi.json", "/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js", "/docs/oauth2-redirect"):
            denied = await c.get(url)
            assert denied.status_code == 401 and "EPOCHSTREAM_API_TOKEN" in denied.json()["detail"], url
            assert (await c.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401, url
            assert (await c.get(url, headers=good)).status_code == 200, url
        schema = (await c.get("/openapi.json", headers=good)).json()
        assert "/runs/{run_id}/epochs" in schema["paths"] and "HTTPBearer" in schema["components"]["securitySchemes"]
        assert "/openapi.json" in (await c.get("/docs", headers=good)).text
        # What needs no token: liveness, and the web page's own files (it sends the token itself).
        for url in ("/healthz", "/", "/static/app.js"):
            assert (await c.get(url)).status_code == 200, url
    open_app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=open_app), base_url="http://api") as c:
        assert (await c.get("/openapi.json")).status_code == 200 and (await c.get("/docs")).status_code == 200


async def test_long_poll_returns_exactly_the_new_epochs(settings, publisher, redis_client, client):
    run = make_run(publisher, "p", losses(3), finish=None)
    drain_all(redis_client, settings)
    url = f"/runs/{run.run_id}/epochs"
    first = await client.get(url)
    etag = first.headers["etag"]

    timed_out = await client.get(url, params={"since": 2, "wait": 0.3}, headers={"If-None-Match": etag})
    assert timed_out.status_code == 304 and timed_out.headers["etag"] == etag

    results = {}

    async def poll():
        results["resp"] = await client.get(url, params={"since": 2, "wait": 20}, headers={"If-None-Match": etag})

    async def publish_later():
        await anyio.sleep(0.3)
        writer = Run(publisher, run.run_id, "p")
        writer._seq = 50
        writer.log_epoch(3, {"train/loss": 0.1})
        writer.log_epoch(4, {"train/loss": 0.05})
        assert publisher.flush(10)
        await anyio.to_thread.run_sync(drain_all, redis_client, settings)

    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            tg.start_soon(publish_later)
    resp = results["resp"]
    assert resp.status_code == 200 and resp.headers["etag"] != etag
    assert [e["epoch"] for e in resp.json()["epochs"]] == [3, 4]
