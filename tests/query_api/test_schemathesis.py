"""Schemathesis against the app's own OpenAPI schema (in-process ASGI) over real projections.

It generates valid and invalid requests for every operation and checks: no server error, status codes,
content types and bodies conform to the schema (strict JSON included).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import positive_data_acceptance

from query_api.app import create_app
from tests.draining import drain_all
from tests.query_api.pipeline import losses, make_run

RUN_ID = "schemathesis-run"


@pytest.fixture(params=[None, "st-token"], ids=["open", "token"])
def api_schema(request, settings, redis_client, publisher):
    from producer import start_run

    run = start_run(project="st", name="st", config={"lr": 0.1}, publisher=publisher, run_id=RUN_ID)
    for epoch, metrics in enumerate(losses(20)):
        run.log_epoch(epoch, {**metrics, "bad": float("nan") if epoch % 3 else float("-inf")}, samples=1)
    run.log_system(cpu_percent=1.0, rss_mb=2.0)
    run.finish("failed", error="ValueError: " + "e" * 500, exit_code=1)
    assert publisher.flush(10)
    make_run(publisher, "st2", losses(3))
    drain_all(redis_client, settings)
    token = request.param
    app = create_app(settings.model_copy(update={"api_token": SecretStr(token) if token else None}))
    # With a token the schema itself needs it too (as every route but /healthz and the web page's files).
    auth = {"headers": {"Authorization": f"Bearer {token}"}} if token else {}
    return schemathesis.openapi.from_asgi("/openapi.json", app, **auth), token


def test_api_conforms_to_its_schema(api_schema):
    # Driven by hand (not schemathesis' pytest plugin, which does not load under this pytest) with hypothesis.
    schema, token = api_schema
    # With a token, its security scheme is in the schema: schemathesis also sends bad credentials (-> 401).
    headers = {"Authorization": f"Bearer {token}"} if token else None
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9  # 7 data routes, /metrics, /readyz
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            # Half the cases ask for the stored run, so the 200 paths are exercised, not only 404s.
            if isinstance((case.query or {}).get("wait"), (int, float)):
                case.query["wait"] = min(case.query["wait"], 0.01)  # long polls are tested elsewhere; keep this fast
            if "run_id" in (case.path_parameters or {}) and len(str(case.query)) % 2 == 0:
                case.path_parameters["run_id"] = RUN_ID
            # positive_data_acceptance is left out: a `cursor` is an opaque token only this API issues, which a
            # schema cannot express, so a random schema-valid string is rightly rejected with 422.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
