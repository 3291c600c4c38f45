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
) -> None:
    """Merge each event type's small segments into one (safe while workers run)."""
    from workers.compaction import compact as do_compact

    settings = build_settings(data_dir=data_dir)
    for result in do_compact(settings, min_age_s=min_age):
        if result.files_in:
            typer.echo(f"{result.event_type}: {result.files_in} segments, {result.rows_in} rows -> "
                       f"1 segment, {result.rows_out} rows")
    typer.echo("compaction done")
