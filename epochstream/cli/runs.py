"""`epochstream runs`: the runs table, newest first."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.client import user_errors
from epochstream.cli.common import build_settings
from epochstream.cli.drops import with_drops
from epochstream.cli.render import flags_text, fmt, recommendation_text, short_id, summary_value, trends_of


@app.command()
def runs(
    project: str = typer.Option(None, help="Only this project."),
    status: str = typer.Option(None, help="Only this status: running, completed, failed, interrupted, stale."),
    limit: int = typer.Option(50, min=1, max=1000, help="Rows at most."),
    api: str = typer.Option(None, help="API URL (default: the stack on --data-dir, else EPOCHSTREAM_API_HOST/PORT)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
) -> None:
    """List runs: status, epochs, best epoch and value, flags, recommendation."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from epochstream.cli.api_client import ApiClient

    with user_errors():
        client = ApiClient.from_settings(build_settings(data_dir=data_dir), api)
        rows = client.runs(project=project, status=status, limit=limit)
    if not rows:
        typer.echo(f"no runs yet at {client.base_url} (train with producer.start_run, or try `epochstream demo`)")
        return
    # No vertical rules, and a project column only when there is more than one project: an 80-column
    # terminal still shows every column. Ids are what people copy: never broken.
    several_projects = len({r.get("project") for r in rows}) > 1
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    table.add_column("run", no_wrap=True)
    if several_projects:
        table.add_column("project", min_width=7, overflow="fold")
    table.add_column("name", min_width=8, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("epochs", justify="right")
    table.add_column("best", min_width=6)
    table.add_column("flags", min_width=8, overflow="fold")
    table.add_column("advice", min_width=8, overflow="fold")
    for r in rows:
        trends = trends_of(r)
        best = "-" if r.get("best_epoch") is None else f"{r['best_epoch']} ({fmt(summary_value(r, 'best_value'))})"
        cells = [short_id(str(r.get("run_id")))] + ([fmt(r.get("project"))] if several_projects else [])
        table.add_row(*cells, fmt(r.get("name")), status_style(str(r.get("status"))), fmt(r.get("epochs")), best,
                      with_drops(flags_text(trends), r), recommendation_text(trends))
    Console().print(table)
    typer.echo("a unique prefix of a run id will do: epochstream analyze RUN, epochstream watch RUN")


def status_style(status: str) -> str:
    color = {"completed": "green", "failed": "red", "running": "cyan", "interrupted": "yellow",
             "stale": "yellow"}.get(status, "white")
    return f"[{color}]{status}[/]"
