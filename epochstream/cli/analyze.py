"""`epochstream analyze RUN`: the verdict on a run, the evidence behind it, and what to do."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.client import ApiClient, user_errors
from epochstream.cli.common import build_settings
from epochstream.cli.drops import drops_lines
from epochstream.cli.verdict import analyze as judge


@app.command()
def analyze(
    run: str = typer.Argument(..., help="Run id (a unique prefix or the run name will do)."),
    api: str = typer.Option(None, help="API URL (default: the stack on --data-dir, else EPOCHSTREAM_API_HOST/PORT)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
) -> None:
    """Verdict (converging, overfitting, diverged, failed, ...) with epochs and deltas, and a recommendation."""
    from rich.console import Console

    with user_errors():
        client = ApiClient.from_settings(build_settings(data_dir=data_dir), api)
        summary = client.resolve_run(run)
        rows = client.epochs(summary["run_id"])
    verdict = judge(summary, rows)
    console = Console(highlight=False)
    console.print(f"[bold]{summary.get('name') or summary['run_id']}[/] ({summary['run_id']}), "
                  f"status {summary.get('status')}, {len(rows)} epochs")
    console.print(f"verdict: [bold]{verdict.headline}[/]")
    for line in verdict.evidence:
        console.print(f"  - {line}")
    reason = f" — {verdict.reason}" if verdict.reason else ""
    console.print(f"recommendation: [bold]{verdict.recommendation}[/]{reason}")
    for i, line in enumerate(drops_lines(summary)):  # user text: never markup
        console.print(f"drops: {line}" if i == 0 else f"  - {line}", markup=False)
