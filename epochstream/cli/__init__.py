"""The `epochstream` command. Each submodule in COMMAND_MODULES registers its commands on `app`.

`epochstream --help` (and every command) imports all of them, so a command module imports only typer and
light helpers at module level, and its engines (pyarrow, duckdb, fastapi, rq, redis, httpx, pydantic)
inside the command's function (`tests/test_layers.py` checks that importing this package loads none).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="epochstream",
    help="Event-sourced metrics for ML training: publish, ingest, query.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = ("worker", "api", "scheduler", "dlq", "rebuild", "compact",
                   "up", "demo", "runs", "watch", "analyze", "sql", "spool", "quarantine", "status", "migrate")

for _name in COMMAND_MODULES:
    importlib.import_module(f"epochstream.cli.{_name}")


def main() -> None:
    """The console script: a user-caused error that escapes a command still ends as one line, not a traceback."""
    from epochstream.cli.client import print_error, user_error

    try:
        app()
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        print_error(message)
        raise SystemExit(1) from None
