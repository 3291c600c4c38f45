"""The page's files and the offline API reference, from the real app (in-process ASGI)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_the_page_and_every_module_it_imports_are_served_with_an_etag(client):
    index = await client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    modules = set(re.findall(r'href="/static/([a-z_]+\.js)"', index.text))
    assert "app.js" in modules
    for name in modules:  # every import between the modules is preloaded, so none loads late
        body = (await client.get(f"/static/{name}")).text
        assert set(re.findall(r'from "\./([a-z_]+\.js)"', body)) <= modules, name
    resp = await client.get("/static/app.js")
    assert resp.headers["content-type"].startswith("text/javascript") and resp.headers["etag"]
    again = await client.get("/static/app.js", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapp.py", "%2E%2E%2F%2E%2E%2Fpyproject.toml", ".hidden.js", "x.py"])
async def test_only_shipped_files_by_exact_name(client, name):
    assert (await client.get(f"/static/{name}")).status_code == 404


async def test_docs_and_redoc_name_only_assets_served_here(client):
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert urls, page
        assert all(u.startswith("/") for u in urls), (page, urls)  # nothing from a CDN
        for url in urls:
            assert (await client.get(url)).status_code == 200, url
    assert (await client.get("/docs/assets/swagger-ui-bundle.js")).headers["content-type"].startswith(
        "text/javascript")
    assert (await client.get("/docs/assets/other.js")).status_code == 404
