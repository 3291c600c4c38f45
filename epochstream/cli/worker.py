"""`epochstream worker`: an RQ worker for drain jobs."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def worker(
    burst: bool = typer.Option(False, help="Drain what is queued now, then exit."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
) -> None:
    """Run an RQ worker that drains event partitions into the Parquet log."""
    from rq import Worker

    from epochstream.broker import connect, resolve_url
    from workers.scheduling import drain_queue, enqueue_drain

    settings = build_settings(data_dir=data_dir)
    url = resolve_url(settings)
    client = connect(url)
    for partition in range(settings.partitions):
        enqueue_drain(client, settings, url, partition)
    Worker([drain_queue(client, settings)], connection=client).work(burst=burst)
