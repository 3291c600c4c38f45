"""`epochstream migrate --log-url s3://...`: move the local log to object storage and rebuild the read model."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def migrate(
    log_url: str = typer.Option(..., help="Where the log goes: s3://bucket/prefix (endpoint and credentials from "
                                          "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."),
    read_model_url: str = typer.Option(None, help="Rebuild the read model here (postgresql://...); default: "
                                                  "EPOCHSTREAM_READ_MODEL_URL."),
    data_dir: Path = typer.Option(None, help="Data directory whose log/ is copied (EPOCHSTREAM_DATA_DIR)."),
    wait: float = typer.Option(0.0, min=0, help="Seconds to wait while a compact or rebuild runs."),
) -> None:
    """Copy the local log to S3 (verified, event by event; rerun it safely), then rebuild the read model from
    there. Stop the workers, the scheduler and the API first; start them afterwards with EPOCHSTREAM_LOG_URL
    (and EPOCHSTREAM_READ_MODEL_URL) set."""
    from epochstream.cli.client import fail
    from epochstream.errors import EpochstreamError
    from workers.maintenance_lock import MaintenanceBusy
    from workers.migrate import migrate as do_migrate

    settings = build_settings(data_dir=data_dir)
    target = build_settings(data_dir=data_dir, log_url=log_url, read_model_url=read_model_url)  # validated
    if not (settings.data_dir / "log").is_dir():
        fail(f"no local log in {settings.data_dir.resolve()}: pass --data-dir to the deployment's data directory")
    try:
        result = do_migrate(settings, target.log_url, target.read_model_url, wait_s=wait)
    except (MaintenanceBusy, EpochstreamError) as exc:
        fail(str(exc))
    typer.echo(f"copied {result.copied} file(s) to {target.log_url} ({result.already_there} already there); "
               f"{result.events} events verified there ({', '.join(f'{k} {v}' for k, v in result.per_type.items())})")
    typer.echo(f"rebuilt the read model of {result.runs} run(s) from {target.log_url}")
    where = " and EPOCHSTREAM_READ_MODEL_URL (as given)" if read_model_url else ""  # never echo a password
    typer.echo(f"now start every worker, scheduler and API with EPOCHSTREAM_LOG_URL={target.log_url}{where}; "
               f"the local {settings.data_dir / 'log'} is no longer read (keep it until you are satisfied)")
