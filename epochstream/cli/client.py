"""What the people-facing commands share: the API client they read through, and one-line errors.

`runs`, `watch` and `analyze` read the stack's HTTP API (the same one dashboards poll), so they work
against a remote deployment too; `sql` reads the DuckDB catalog on disk. Every error a user can cause
becomes one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

from epochstream.errors import EpochstreamError, TerminalError, TransientError
from epochstream.settings import Settings

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class ApiUnreachable(TransientError):
    """Nothing answers at the API URL."""


class UnknownRun(TerminalError):
    """The API has no such run."""


class ApiError(TerminalError):
    """The API answered with an error."""


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn our typed errors into one clear line and exit 1."""
    try:
        yield
    except EpochstreamError as exc:
        fail(str(exc))


def default_api_url(settings: Settings) -> str:
    """A stack running on this data directory first (it may have picked its own port), else the settings."""
    from epochstream.stack import running_stack

    state = running_stack(Path(settings.data_dir))
    if state and state.get("api_url"):
        return str(state["api_url"])
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def runs_of(payload: Any) -> list[dict[str, Any]]:
    """The run rows of a `/runs` answer, whether it is a bare list or a page object."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in ("runs", "items", "data"):
            if isinstance(payload.get(key), list):
                return payload[key]
    return []


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings, api: str | None = None) -> ApiClient:
        token = settings.api_token.get_secret_value() if settings.api_token else None
        return cls(api or default_api_url(settings), token)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError:
            raise ApiUnreachable(
                f"cannot reach the epochstream API at {self.base_url}: start the stack with `epochstream up` "
                f"(or pass --api URL)"
            ) from None
        if response.status_code == 404:
            raise UnknownRun(self._detail(response))
        if response.status_code in (401, 403):
            raise ApiError(f"the API at {self.base_url} refused the request: set EPOCHSTREAM_API_TOKEN")
        if response.status_code >= 400:
            raise ApiError(f"the API answered {response.status_code} for {path}: {self._detail(response)}")
        return response.json()

    @staticmethod
    def _detail(response: httpx.Response) -> str:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        return str(detail) if detail else response.text[:200]

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        return runs_of(self.get("/runs", **params))

    def resolve_run(self, ref: str) -> dict[str, Any]:
        """The summary of run `ref`: a full run id, a unique prefix of one, or a unique run name."""
        try:
            return self.get(f"/runs/{ref}")
        except UnknownRun:
            pass
        matches = [r for r in self.runs(limit=500) if str(r.get("run_id", "")).startswith(ref) or r.get("name") == ref]
        if len(matches) == 1:
            return self.get(f"/runs/{matches[0]['run_id']}")
        if len(matches) > 1:
            ids = ", ".join(str(r["run_id"])[:12] for r in matches[:5])
            raise UnknownRun(f"{ref!r} matches {len(matches)} runs ({ids}): give more of the run id")
        raise UnknownRun(f"no run {ref!r} at {self.base_url} (`epochstream runs` lists the runs there are)")

    def epochs(self, run_id: str, since: int | None = None) -> list[dict[str, Any]]:
        return self.get(f"/runs/{run_id}/epochs", since=since).get("epochs", [])

    def system(self, run_id: str, max_points: int | None = None) -> Any:
        return self.get(f"/runs/{run_id}/system", max_points=max_points)
