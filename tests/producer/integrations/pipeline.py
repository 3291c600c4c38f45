"""An integration's run through the whole pipeline: a real Redis, a worker's drain, a real uvicorn."""

from __future__ import annotations

from typing import Any

import httpx
import redis

from epochstream.settings import Settings
from tests.draining import drain_all


def drained(client: redis.Redis, settings: Settings) -> None:
    stored, dead = drain_all(client, settings)
    assert stored > 0 and dead == 0, (stored, dead)


def served(base_url: str, run_id: str) -> tuple[dict[str, Any], dict[int, dict], dict[int, tuple]]:
    """(GET /runs/{id}, {epoch: metrics} from /epochs, {step: (epoch, metrics)} from /steps)."""
    run = httpx.get(f"{base_url}/runs/{run_id}", timeout=10)
    epochs = httpx.get(f"{base_url}/runs/{run_id}/epochs", timeout=10)
    steps = httpx.get(f"{base_url}/runs/{run_id}/steps", params={"limit": 100_000}, timeout=10)
    for response in (run, epochs, steps):
        assert response.status_code == 200, (response.url, response.text)
    assert steps.json()["next_since"] is None
    assert not any(e["non_finite"] for e in epochs.json()["epochs"])  # finite values: JSON holds them exactly
    return (run.json(), {e["epoch"]: e["metrics"] for e in epochs.json()["epochs"]},
            {s["step"]: (s["epoch"], s["metrics"]) for s in steps.json()["steps"]})
