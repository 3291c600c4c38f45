"""`epochstream up`: the whole pipeline locally in one command (broker, workers, scheduler, API)."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.client import user_errors
from epochstream.cli.common import build_settings


@app.command()
def up(
    workers: int = typer.Option(2, min=1, max=64, help="Worker processes."),
    host: str = typer.Option(None, help="API bind address (EPOCHSTREAM_API_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="API port (EPOCHSTREAM_API_PORT, default 8000; 0 picks a free one)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    interval: float = typer.Option(1.0, min=0.05, help="Seconds between drain scheduling rounds."),
) -> None:
    """Run broker, workers, scheduler and API locally until Ctrl-C, which drains what is in flight first.

    With no EPOCHSTREAM_REDIS_URL an embedded broker keeps its append-only data under <data_dir>/broker.
    """
    from epochstream.stack import Stack

    with user_errors():
        settings = build_settings(api_host=host, api_port=port, data_dir=data_dir)
        stack = Stack(settings, workers=workers, scheduler_interval=interval,
                      say=lambda line: typer.echo(line))
        stack.serve(on_ready=lambda: typer.echo("ready: Ctrl-C drains what is in flight and stops everything"))
        typer.echo("stopped")
