"""`epochstream watch RUN`: a live terminal view of one run until it ends (or Ctrl-C)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from epochstream.cli import app
from epochstream.cli.client import user_errors
from epochstream.cli.common import build_settings
from epochstream.cli.render import (
    TERMINAL,
    flags_text,
    fmt,
    metric_series,
    recommendation_text,
    sparkline,
    system_series,
)

if TYPE_CHECKING:
    from epochstream.cli.api_client import ApiClient

SPARK_WIDTH = 48


def view(summary: dict[str, Any], epochs: list[dict[str, Any]], system: Any):
    """One frame: header, a sparkline per series with its last value, flags, the error if any."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    status = summary.get("status", "?")
    head = Text.assemble((f"{summary.get('name') or summary.get('run_id')}", "bold"),
                         f"  {summary.get('project') or ''}  ", (status, "red" if status == "failed" else "cyan"),
                         f"  epoch {fmt(summary.get('last_epoch', epochs[-1]['epoch'] if epochs else None))}")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_column(justify="right")
    for label, series in (("train/loss", metric_series(epochs, "train/loss")),
                          ("val/loss", metric_series(epochs, "val/loss"))):
        grid.add_row(label, sparkline(series, SPARK_WIDTH), fmt(series[-1] if series else None))
    gpu = system_series(system)
    if gpu["mem"]:
        grid.add_row("GPU mem MB", sparkline(gpu["mem"], SPARK_WIDTH), fmt(gpu["mem"][-1]))
        grid.add_row("GPU util %", sparkline(gpu["util"], SPARK_WIDTH), fmt(gpu["util"][-1]))
    else:
        grid.add_row("GPU", "no GPU samples (a CPU run, or none sent yet)", "")
    trends = summary.get("trends") or {}
    grid.add_row("best", f"epoch {fmt(summary.get('best_epoch'))} {summary.get('best_metric') or ''}",
                 fmt(summary.get("best_value")))
    grid.add_row("flags", flags_text(trends), "")
    grid.add_row("advice", recommendation_text(trends), "")
    parts: list[Any] = [head, grid]
    if summary.get("error"):
        parts.append(Text(f"error: {summary['error']}", style="red"))
    return Group(*parts)


@app.command()
def watch(
    run: str = typer.Argument(..., help="Run id (a unique prefix or the run name will do)."),
    interval: float = typer.Option(2.0, min=0.1, help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="Print one frame and exit."),
    api: str = typer.Option(None, help="API URL (default: the stack on --data-dir, else EPOCHSTREAM_API_HOST/PORT)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
) -> None:
    """Live sparklines of train/val loss, GPU memory and utilisation, and the trend flags."""
    from rich.console import Console
    from rich.live import Live

    from epochstream.cli.api_client import ApiClient

    console = Console()
    with user_errors():
        client = ApiClient.from_settings(build_settings(data_dir=data_dir), api)
        summary = client.resolve_run(run)
        run_id = summary["run_id"]
        frame = _frame(client, run_id, summary)
        if once:
            console.print(frame)
            return
        try:
            with Live(frame, console=console, refresh_per_second=4) as live:
                while summary.get("status") not in TERMINAL:
                    time.sleep(interval)
                    summary = client.get(f"/runs/{run_id}")
                    live.update(_frame(client, run_id, summary))
        except KeyboardInterrupt:
            return


def _frame(client: ApiClient, run_id: str, summary: dict[str, Any]):
    from epochstream.cli.api_client import ApiError, UnknownRun

    try:
        system = client.system(run_id, max_points=SPARK_WIDTH)
    except (UnknownRun, ApiError):  # an API without system data for this run: draw without it
        system = None
    return view(summary, client.epochs(run_id), system)
