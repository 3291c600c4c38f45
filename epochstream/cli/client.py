"""What the people-facing commands share: the API client they read through, and one-line errors.

`runs`, `watch` and `analyze` read the stack's HTTP API (the same one dashboards poll), so they work
against a remote deployment too; `sql` reads the DuckDB catalog on disk. Every error a user can cause
becomes one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

from epochstream.errors import EpochstreamError, TerminalError, TransientError
from epochstream.settings import Settings
from query_api.limits import MAX_PAGE  # the API's largest page: longer listings are read page by page
from schemas.envelope import RUN_ID_PATTERN

_RUN_ID = re.compile(RUN_ID_PATTERN)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class ApiUnreachable(TransientError):
    """Nothing answers at the API URL."""


class UnknownRun(TerminalError):
    """The API has no such run."""


class ApiError(TerminalError):
    """The API answered with an error."""


def print_error(message: str) -> None:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)  # user text is never markup


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def user_error(exc: BaseException) -> str | None:
    """The one line to show for an error a user caused (bad setting, broker or API away), else None."""
    if isinstance(exc, EpochstreamError):
        return str(exc)
    import redis

    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return (f"cannot reach Redis ({exc}): start it, or point EPOCHSTREAM_REDIS_URL at one "
                f"(unset, the broker of `epochstream up` is used)")
    return None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user-caused errors into one clear line and exit 1."""
    try:
        yield
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        fail(message)


def default_api_url(settings: Settings) -> str:
    """A stack running on this data directory first (it may have picked its own port), else the settings."""
    from epochstream.stack import running_stack

    state = running_stack(Path(settings.data_dir))
    if state and state.get("api_url"):
        return str(state["api_url"])
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    return f"http://{host}:{settings.api_port}"


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
        if isinstance(detail, list):  # a 422: FastAPI's list of {loc, msg}
            detail = "; ".join(f"{e.get('loc', ['?'])[-1]}: {e.get('msg')}" if isinstance(e, dict) else str(e)
                               for e in detail)
        return str(detail) if detail else response.text[:200]

    def runs(self, limit: int = 50, **params: Any) -> list[dict[str, Any]]:
        """Up to `limit` runs, newest first, following the API's cursor past its largest page."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while len(rows) < limit:
            page = self.get("/runs", limit=min(limit - len(rows), MAX_PAGE), cursor=cursor, **params)
            rows += page["runs"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return rows

    def resolve_run(self, ref: str) -> dict[str, Any]:
        """The summary of run `ref`: a full run id, a unique prefix of one, or a unique run name."""
        if _RUN_ID.fullmatch(ref):  # anything else is no run id: never put it in a URL path
            try:
                return self.get(f"/runs/{ref}")
            except UnknownRun:
                pass
        matches = [r for r in self.runs(limit=MAX_PAGE)
                   if str(r.get("run_id", "")).startswith(ref) or r.get("name") == ref]
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
