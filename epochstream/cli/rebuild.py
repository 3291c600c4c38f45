"""`epochstream rebuild`: replay the Parquet log into a fresh read model and swap it in."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def rebuild(
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    wait: float = typer.Option(120.0, help="Seconds to wait for running drains (and a running compact) to finish."),
) -> None:
    """Rebuild the read model from the log and swap it in (drains pause meanwhile: their locks are held)."""
    from epochstream.broker import connect_queue, resolve_queue_url
    from epochstream.cli.client import fail
    from epochstream.cli.quarantine import unresolved_line
    from epochstream.errors import ConfigurationError
    from schemas.keys import Keys
    from workers.maintenance_lock import MaintenanceBusy
    from workers.rebuild import rebuild as do_rebuild

    settings = build_settings(data_dir=data_dir)
    keys = Keys(settings.namespace, settings.partitions)
    try:
        client = connect_queue(resolve_queue_url(settings))  # the drain locks live on the queue broker
        client.ping()
    except ConfigurationError:
        raise
    except Exception as exc:  # noqa: BLE001 - no broker means no drains to pause
        typer.echo(f"no broker ({exc}); rebuilding without pausing drains")
        client = None
    held = []
    try:
        if client is not None:
            deadline = time.monotonic() + wait
            for partition in range(settings.partitions):
                lock = keys.drain_lock(partition)
                while not client.set(lock, b"rebuild", nx=True, ex=int(wait) + 600):
                    if time.monotonic() > deadline:
                        fail(f"partition {partition} is still draining after {wait}s; retry later")
                    time.sleep(0.2)
                held.append(lock)
        try:
            runs = do_rebuild(settings, wait_s=wait)
        except MaintenanceBusy as exc:
            fail(str(exc))
        typer.echo(f"rebuilt the read model of {runs} run(s) from the log")
        line = unresolved_line(settings)
        if line:
            typer.echo(line)
    finally:
        if client is not None and held:
            client.delete(*held)
