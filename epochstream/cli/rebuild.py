"""`epochstream rebuild`: replay the Parquet log into a fresh read model and swap it in."""

from __future__ import annotations

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
    import contextlib
    import os
    import socket

    from epochstream.broker import connect_queue, resolve_queue_url
    from epochstream.cli.client import fail
    from epochstream.cli.quarantine import unresolved_line
    from epochstream.errors import ConfigurationError
    from schemas.keys import Keys
    from workers import locks
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
    paused = contextlib.nullcontext() if client is None else locks.pause_all(
        client, [keys.drain_lock(p) for p in range(settings.partitions)],
        locks.Holder("rebuild", f"{socket.gethostname()}-{os.getpid()}"), wait, wanted_key=keys.pause_wanted)
    try:
        with paused:
            runs = do_rebuild(settings, wait_s=wait)
    except locks.LocksBusy as exc:
        fail(f"a partition is still draining after {wait}s ({exc}); retry later")
    except MaintenanceBusy as exc:
        fail(str(exc))
    typer.echo(f"rebuilt the read model of {runs} run(s) from the log")
    line = unresolved_line(settings)
    if line:
        typer.echo(line)
