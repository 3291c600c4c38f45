"""`epochstream api`: serve the read-only HTTP API with uvicorn."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def api(
    host: str = typer.Option(None, help="Bind address (EPOCHSTREAM_API_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (EPOCHSTREAM_API_PORT, default 8000)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    token: str = typer.Option(None, help="Require `Authorization: Bearer TOKEN` on every route but /healthz "
                                         "(EPOCHSTREAM_API_TOKEN; default: no token)."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve run history, best epochs and trend flags over HTTP (GET and HEAD only; OpenAPI at /docs)."""
    import uvicorn

    from epochstream.cli.client import fail
    from epochstream.stack import port_free
    from query_api.app import create_app

    settings = build_settings(api_host=host, api_port=port, data_dir=data_dir, api_token=token)
    if not port_free(settings.api_host, settings.api_port):
        fail(f"port {settings.api_port} on {settings.api_host} is in use: pass --port (or set EPOCHSTREAM_API_PORT)")
    typer.echo(f"epochstream API on http://{settings.api_host}:{settings.api_port} (docs at /docs), "
               f"reading {settings.data_dir}", err=True)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level=log_level,
                access_log=log_level in ("info", "debug", "trace"))
