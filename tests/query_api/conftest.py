"""Fixtures for the API tests: a publisher on the test namespace and an in-process client of the real app."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from producer import Publisher
from query_api.app import create_app


@pytest.fixture
def publisher(settings) -> Iterator[Publisher]:
    pub = Publisher(settings)
    yield pub
    pub.close()


@pytest.fixture
async def client(settings) -> Iterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c
