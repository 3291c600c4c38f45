"""`epochstream analyze RUN`: the verdict on a run, the evidence behind it, and what to do."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.client import user_errors
from epochstream.cli.common import build_settings
from epochstream.cli.drops import drops_lines


@app.command()
def analyze(
    run: str = typer.Argument(..., help="Run id (a unique prefix or the run name will do)."),
    api: str = typer.Option(None, help="API URL (default: the stack on --data-dir, else EPOCHSTREAM_API_HOST/PORT)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
) -> None:
    """Verdict (converging, overfitting, plateaued, diverged, failed, ...) with its evidence, and what to do."""
    from rich.console import Console
    from rich.markup import escape

    from epochstream.cli.api_client import ApiClient
    from epochstream.cli.verdict import analyze as judge

    with user_errors():
        client = ApiClient.from_settings(build_settings(data_dir=data_dir), api)
        summary = client.resolve_run(run)
        rows = client.epochs(summary["run_id"])
    verdict = judge(summary, rows)
    console = Console(highlight=False)
    console.print(f"[bold]{escape(str(summary.get('name') or summary['run_id']))}[/] ({summary['run_id']}), "
                  f"status {summary.get('status')}, {len(rows)} epochs")
    console.print(f"monitoring {escape(verdict.judged)}")
    console.print(f"verdict: [bold]{escape(verdict.headline)}[/]")
    for line in verdict.evidence:  # user text (an error message, a metric name) is never markup
        console.print(f"  - {escape(line)}")
    reason = f" — {escape(verdict.reason)}" if verdict.reason else ""
    console.print(f"recommendation: [bold]{escape(verdict.recommendation)}[/]{reason}")
    for i, line in enumerate(drops_lines(summary)):  # user text: never markup
        console.print(f"drops: {line}" if i == 0 else f"  - {line}", markup=False)
