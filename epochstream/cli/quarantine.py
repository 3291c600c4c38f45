"""`epochstream quarantine`: the log segments moved aside as unreadable, and what became of their events."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings

if TYPE_CHECKING:
    from epochstream.settings import Settings

UNRESOLVED = ("pending", "partial", "lost")


def unresolved_line(settings: Settings) -> str | None:
    """One line for `compact`, `rebuild` (and `status`) when quarantined events are not all recovered."""
    from epochstream.layout import DataLayout
    from workers.quarantine import quarantined

    items = [q for q in quarantined(DataLayout.of(settings)) if q.recovery in UNRESOLVED]
    if not items:
        return None
    return (f"{len(items)} quarantined segment(s) whose events are not all recovered: "
            "`epochstream quarantine` lists them")


@app.command("quarantine")
def quarantine_list(
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    recover: bool = typer.Option(False, help="First try again to recover pending ones from the broker."),
) -> None:
    """List quarantined log segments: the file, why, when, and how many of its events were recovered or lost."""
    from rich.console import Console
    from rich.table import Table

    from epochstream.layout import DataLayout
    from workers.quarantine import quarantined
    from workers.salvage import recover_pending

    settings = build_settings(data_dir=data_dir)
    layout = DataLayout.of(settings)
    if recover:
        recover_pending(settings)
    items = quarantined(layout)
    console = Console()
    if not items:
        console.print(f"no quarantined segments in {settings.data_dir}")
        return
    table = Table(header_style="bold")
    for column in ("file", "reason", "quarantined at", "found by", "events", "recovery", "recovered", "lost"):
        table.add_column(column, overflow="fold")
    for q in items:
        table.add_row(q.original, q.reason, q.when.isoformat(timespec="seconds"), q.found_by,
                      "?" if q.events is None else str(q.events), q.recovery, str(q.recovered_events),
                      "unknown" if q.lost_events is None else str(q.lost_events))
    console.print(table)
    for q in items:
        if q.recovery_note:
            console.print(f"{q.original}: {q.recovery_note}", style="dim")
    console.print(f"{len(items)} quarantined; the files are under {layout.quarantine} (SQL: SELECT * FROM quarantine)",
                  style="dim")
