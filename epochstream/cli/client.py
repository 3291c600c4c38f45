"""What the people-facing commands share: the API client they read through, and one-line errors.

`runs`, `watch` and `analyze` read the stack's HTTP API (the same one dashboards poll), so they work
against a remote deployment too; `sql` reads the DuckDB catalog on disk. Every error a user can cause
becomes one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console

from epochstream.client import ApiError, ApiUnreachable, Client, UnknownRun, default_url
from epochstream.errors import EpochstreamError
from epochstream.settings import Settings

__all__ = ["ApiClient", "ApiError", "ApiUnreachable", "UnknownRun", "default_api_url", "fail", "print_error",
           "user_error", "user_errors"]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


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
