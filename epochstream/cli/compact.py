"""`epochstream compact`: merge small log segments, deduplicated, without changing any query result."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def compact(
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    min_age: float = typer.Option(60.0, help="Only merge segments at least this many seconds old."),
    wait: float = typer.Option(0.0, min=0, help="Seconds to wait while another compact or rebuild runs."),
) -> None:
    """Merge each partition's small segments into one (safe while workers run and while SQL queries run)."""
    from epochstream.cli.client import fail
    from epochstream.cli.quarantine import unresolved_line
    from workers.compaction import compact as do_compact
    from workers.maintenance_lock import MaintenanceBusy

    settings = build_settings(data_dir=data_dir)
    try:
        results = do_compact(settings, min_age_s=min_age, wait_s=wait)
    except MaintenanceBusy as exc:
        fail(str(exc))
    for result in results:
        if result.files_in:
            typer.echo(f"{result.event_type}: {result.files_in} segments, {result.rows_in} rows -> "
                       f"{result.files_out} segment(s), {result.rows_out} rows")
        for name in result.quarantined:
            typer.echo(f"{result.event_type}: {name} is unreadable: quarantined (see `epochstream quarantine`)")
    line = unresolved_line(settings)
    if line:
        typer.echo(line)
    typer.echo("compaction done")
