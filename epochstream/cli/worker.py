"""`epochstream worker`: an RQ worker for drain jobs, with the scheduling loop it needs beside it."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def worker(
    burst: bool = typer.Option(False, help="Drain what is queued now, then exit."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    scheduler: bool = typer.Option(True, help="Also run the scheduling loop in a thread (--no-scheduler: not)."),
    interval: float = typer.Option(0.5, help="Scheduling interval in seconds."),
    spool: bool = typer.Option(True, help="Also deliver what dead producers on this host left in the spool "
                                          "(--no-spool: not)."),
) -> None:
    """Run an RQ worker that drains event partitions into the Parquet log."""
    from rq import Worker

    from epochstream.broker import connect, connect_queue, resolve_url, with_queue_url
    from workers.catalog import CatalogBusy, ensure_catalog
    from workers.scheduling import drain_queue, run_scheduler, schedule_once

    settings = build_settings(data_dir=data_dir)
    url = resolve_url(settings)
    settings = with_queue_url(settings, url)  # RQ and the drain locks: never on a cluster
    courier = spool_courier(settings, url) if spool and not burst else None
    client, queue = connect(url), connect_queue(settings.queue_url)
    with contextlib.suppress(CatalogBusy):  # someone else is creating it right now
        ensure_catalog(settings)
    schedule_once(client, settings, url, queue)
    stop = threading.Event()
    if scheduler and not burst:
        thread = threading.Thread(target=run_scheduler, args=(connect(url), settings, url, interval),
                                  kwargs={"stop": stop.is_set, "queue": connect_queue(settings.queue_url)},
                                  name="epochstream-scheduler", daemon=True)
        thread.start()
    try:
        Worker([drain_queue(queue, settings)], connection=queue).work(burst=burst)
    finally:
        stop.set()
        if courier is not None:
            courier.stop()


def spool_courier(settings, url: str):
    """Spooled events on this host reach the broker with no training process running (producer.courier)."""
    from producer.courier import Courier

    return Courier(settings, url_resolver=lambda _settings: url).start()
