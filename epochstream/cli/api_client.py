"""The API client as the commands use it: rows as the API sends them (dicts), errors as one line.

A module of its own so that importing the commands (as `epochstream --help` does) does not import httpx.
"""

from __future__ import annotations

from typing import Any

from epochstream.client import ApiError, ApiUnreachable, Client, UnknownRun, default_url
from epochstream.settings import Settings

__all__ = ["ApiClient", "ApiError", "ApiUnreachable", "UnknownRun", "default_api_url"]


def default_api_url(settings: Settings) -> str:
    return default_url(settings)


class ApiClient(Client):
    """The client as the commands use it: rows as the API sends them (dicts), errors as one line."""

    @classmethod
    def from_settings(cls, settings: Settings, api: str | None = None) -> ApiClient:
        token = settings.api_token.get_secret_value() if settings.api_token else None
        return cls(api or default_url(settings), token, timeout=5.0, settings=settings)

    def runs(self, limit: int = 50, **params: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.run_rows(limit, **params)

    def resolve_run(self, ref: str) -> dict[str, Any]:
        return self.resolve(ref)

    def epochs(self, run_id: str, since: int | None = None) -> list[dict[str, Any]]:
        return self.get(f"/runs/{run_id}/epochs", since=since).get("epochs", [])

    def system(self, run_id: str, max_points: int | None = None) -> Any:
        return self.get(f"/runs/{run_id}/system", max_points=max_points)
