"""An API host that PostgreSQL refuses (a wrong database, user or password) answers 503 with what to fix."""

from __future__ import annotations

import httpx
import pytest

from query_api.app import create_app
from tests.postgres import url_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_a_refused_read_model_is_a_503_that_says_which_setting(settings, postgres_url):
    del postgres_url  # only for the server: skipped, as every PostgreSQL test, where there is none
    wrong = settings.model_copy(update={"read_model_url": url_of("epochstream_test_not_created")})
    app = create_app(wrong)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        for url in ("/runs", "/runs/r1", "/runs/r1/epochs"):
            answer = await client.get(url)
            assert answer.status_code == 503, (url, answer.text)
            assert "EPOCHSTREAM_READ_MODEL_URL" in answer.json()["detail"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "ReadModelConfigError" in ready.json()["read_model"]
