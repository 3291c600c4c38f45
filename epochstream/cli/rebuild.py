"""`epochstream rebuild`: replay the Parquet log into a fresh read model and swap it in."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def rebuild(
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    wait: float = typer.Option(120.0, help="Seconds to wait for running drains to finish."),
) -> None:
    """Rebuild the read model from the log and swap it in (drains pause meanwhile: their locks are held)."""
    import contextlib
    import os
    import socket

    from epochstream.broker import connect, resolve_url
    from epochstream.cli.client import fail
    from schemas.keys import Keys
    from workers import locks
    from workers.rebuild import rebuild as do_rebuild

    settings = build_settings(data_dir=data_dir)
    keys = Keys(settings.namespace, settings.partitions)
    try:
        client = connect(resolve_url(settings))
        client.ping()
    except Exception as exc:  # noqa: BLE001 - no broker means no drains to pause
        typer.echo(f"no broker ({exc}); rebuilding without pausing drains")
        client = None
    paused = contextlib.nullcontext() if client is None else locks.pause_all(
        client, [keys.drain_lock(p) for p in range(settings.partitions)],
        locks.Holder("rebuild", f"{socket.gethostname()}-{os.getpid()}"), wait)
    try:
        with paused:
            runs = do_rebuild(settings)
    except locks.LocksBusy as exc:
        fail(f"a partition is still draining after {wait}s ({exc}); retry later")
    typer.echo(f"rebuilt the read model of {runs} run(s) from the log")
