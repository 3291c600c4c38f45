"""What the people-facing commands share: the API client they read through, and one-line errors.

`runs`, `watch` and `analyze` read the stack's HTTP API (the same one dashboards poll), so they work
against a remote deployment too; `sql` reads the DuckDB catalog on disk. Every error a user can cause
becomes one line on stderr and a non-zero exit, never a traceback.

Importing this module costs nothing heavy (every command module imports it, and `epochstream --help`
imports every command module): rich, httpx and pydantic are imported when an error is shown or a command
runs. The API client the commands use is `epochstream.cli.api_client.ApiClient`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["fail", "print_error", "user_error", "user_errors"]


@functools.cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    from rich.markup import escape

    err_console().print(f"[bold red]error:[/] {escape(message)}", markup=True)  # user text is never markup


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def user_error(exc: BaseException) -> str | None:
    """The one line to show for an error a user caused (bad setting, broker or API away), else None."""
    from epochstream.errors import EpochstreamError

    if isinstance(exc, EpochstreamError):
        return str(exc)
    import redis

    if isinstance(exc, redis.RedisError):
        from epochstream.broker_errors import broker_error

        return str(broker_error(exc))
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
