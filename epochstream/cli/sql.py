"""`epochstream sql QUERY`: SQL against the DuckDB catalog, opened read-only, shown as a table."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.client import fail
from epochstream.cli.common import build_settings
from epochstream.cli.render import fmt


@app.command()
def sql(
    query: str = typer.Argument(..., help='For example: "SELECT run_id, status FROM runs".'),
    limit: int = typer.Option(100, min=1, help="Rows shown at most."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
) -> None:
    """Query the catalog (views runs, epochs, epoch_metrics, system, trends, dead_letters); read-only."""
    import duckdb
    from rich.console import Console
    from rich.table import Table

    from epochstream.errors import EpochstreamError
    from epochstream.layout import DataLayout
    from workers.catalog import open_catalog
    from workers.catalog_errors import catalog_error

    settings = build_settings(data_dir=data_dir)
    layout = DataLayout.of(settings)
    if not (layout.catalog.exists() or not layout.log_is_local or Path(layout.log).exists()):
        # Never create a catalog in a directory that holds no epochstream data: a typo'd path is likelier. With
        # the log on S3 any host's data directory may be new: the catalog is made there from the bucket.
        fail(f"no epochstream data in {settings.data_dir.resolve()}: pass --data-dir (or set EPOCHSTREAM_DATA_DIR) "
             f"to where `epochstream up` or your workers keep it")
    try:
        con = open_catalog(settings, read_only=True, fresh=True)
    except (duckdb.Error, EpochstreamError) as exc:
        fail(f"cannot open the catalog in {settings.data_dir}: {catalog_error(exc)}")
    try:
        cursor = con.execute(query)
        if cursor.description is None:
            typer.echo("ok (the statement returned no rows)")
            return
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchmany(limit + 1)
    except duckdb.Error as exc:
        fail(str(catalog_error(exc)))
    finally:
        con.close()
    table = Table(show_lines=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows[:limit]:
        table.add_row(*(fmt(v) for v in row))
    console = Console()
    console.print(table)
    more = " (more rows: raise --limit)" if len(rows) > limit else ""
    console.print(f"{min(len(rows), limit)} rows{more}", style="dim")
