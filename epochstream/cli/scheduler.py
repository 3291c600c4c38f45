"""`epochstream scheduler`: keep one drain queued per partition with a backlog, and trim the streams."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def scheduler(
    interval: float = typer.Option(0.5, help="Seconds between scheduling passes."),
    trim_every: float = typer.Option(30.0, help="Seconds between stream trims (XTRIM MINID)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
) -> None:
    """Queue drains for partitions with a backlog (never two per partition) and trim acknowledged entries."""
    from epochstream.broker import connect, connect_queue, resolve_url, with_queue_url
    from workers.catalog import CatalogBusy, ensure_catalog
    from workers.scheduling import run_scheduler

    settings = build_settings(data_dir=data_dir)
    url = resolve_url(settings)
    settings = with_queue_url(settings, url)
    with contextlib.suppress(CatalogBusy):
        ensure_catalog(settings)
    with contextlib.suppress(KeyboardInterrupt):
        run_scheduler(connect(url), settings, url, interval=interval, trim_every=trim_every,
                      queue=connect_queue(settings.queue_url))
