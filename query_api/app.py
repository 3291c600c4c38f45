"""The FastAPI app factory. Settings come in from the entry point; nothing is built at import time."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from epochstream.collector import API_GEN0, tune_collector
from epochstream.errors import TransientError
from epochstream.readmodel.errors import ReadModelConfigError
from epochstream.readmodel.reader import ReadModelReader
from epochstream.settings import Settings
from query_api.deps import ReadContext, require_token
from query_api.fastpath import ConditionalFastPath
from query_api.limits import WATCH_INTERVAL_S
from query_api.metrics import install as install_metrics
from query_api.middleware import ReadOnlyMiddleware
from query_api.routes import docs, health, runs, series, ui
from query_api.store import RunNotFound, RunStore
from query_api.watch import ChangeWatcher

DESCRIPTION = """Read-only run history, best epochs and trend flags for ML training runs.

Built for polling: every answer has an `ETag`; send it back in `If-None-Match` to get `304` cheaply, add
`since=` to get only newer rows, and `wait=` (seconds, capped at 30) to hold the request until new data
arrives. Floats are strict JSON: NaN and ±inf are sent as `null` and named in the object's `non_finite` map.
GET and HEAD only. When the server sets `EPOCHSTREAM_API_TOKEN`, every route but `/healthz` and the web
page's own files needs `Authorization: Bearer <token>`, this reference (`/docs`, `/redoc`, `/openapi.json`)
included.
"""


def create_app(settings: Settings) -> FastAPI:
    reader = ReadModelReader(settings.data_dir, settings.read_model_url)
    watcher = ChangeWatcher(reader, WATCH_INTERVAL_S)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        # What start-up made (modules, routes, caches' scaffolding) lives as long as the process: out of the
        # collector's generations, so a full collection during a request scans only what requests made. With
        # gen-0 collections rarer, a downsampled answer (tens of thousands of short-lived objects) is not
        # interrupted dozens of times. Both took the p99 of /steps?max_points=1000 over 1M steps from GC pauses.
        tune_collector(API_GEN0)
        yield
        await watcher.close()

    # docs_url/redoc_url None: FastAPI's own pages load their scripts from a CDN; routes/docs.py serves them offline.
    # openapi_url None: FastAPI's own schema route takes no dependencies; routes/docs.py serves it behind the token.
    app = FastAPI(title="epochstream", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.read = ReadContext(settings, RunStore(reader), watcher)
    # Starlette runs the last added middleware first: read-only guard, then the 304 fast path, then routes.
    app.add_middleware(ConditionalFastPath, ctx=app.state.read)
    app.add_middleware(ReadOnlyMiddleware)

    @app.exception_handler(RunNotFound)
    async def _not_found(_: Request, exc: RunNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(TransientError)
    async def _transient(_: Request, exc: TransientError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(ReadModelConfigError)
    async def _misconfigured(_: Request, exc: ReadModelConfigError) -> JSONResponse:
        # PostgreSQL refuses this host (credentials, database, privileges): the service is unavailable until
        # the setting is fixed, and the message says which; not a 500 with nothing to go on.
        return JSONResponse({"detail": str(exc)}, status_code=503)

    app.include_router(health.router)
    # The token check (and its security scheme in the OpenAPI) exists only when a token is configured, so the
    # published schema says exactly what the server enforces.
    protected = [Depends(require_token)] if settings.api_token is not None else []
    app.include_router(runs.router, dependencies=protected)
    app.include_router(series.router, dependencies=protected)
    app.include_router(ui.router)  # the web page at `/`: static files only, no data
    app.include_router(docs.router, dependencies=protected)  # /openapi.json, /docs, /redoc: assets shipped, no CDN
    install_metrics(app, settings, reader, protected)  # /metrics, /readyz; the timer is the outermost middleware
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory query_api.app:app_from_env`."""
    return create_app(Settings())
