"""The FastAPI app factory. Settings come in from the entry point; nothing is built at import time."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from epochstream.layout import DataLayout
from epochstream.settings import Settings
from query_api.routes import runs
from query_api.store import ProjectionStore, RunNotFound


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="epochstream", version="0.1.0",
                  description="Read-only run history, best epochs and trend flags for ML training runs.")
    app.state.settings = settings
    app.state.store = ProjectionStore(DataLayout(settings.data_dir))

    @app.exception_handler(RunNotFound)
    async def _not_found(_: Request, exc: RunNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(runs.router)
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory query_api.app:app_from_env`."""
    return create_app(Settings())
