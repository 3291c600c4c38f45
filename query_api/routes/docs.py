"""The API reference at `/docs` (Swagger UI) and `/redoc` (ReDoc), working with no network at all.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank offline or behind a firewall. The
assets here come from the `fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1, and ReDoc's
standalone bundle), served by exact name like the web page's files. The schema itself (`/openapi.json`) is
served here too rather than by FastAPI, so that with a token configured the whole reference needs it like
every route but `/healthz` and the web page (`create_app` adds the check to this router): what a server
exposes is nobody's business without the token. A browser then needs a header-setting extension; curl and
generated clients send the header anyway.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
          "redoc.standalone.js": "text/javascript; charset=utf-8", "favicon.png": "image/png"}
OPENAPI_URL = "/openapi.json"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def _asset_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


@router.get(OPENAPI_URL)
async def openapi(request: Request) -> JSONResponse:
    # What FastAPI's own route does (it is switched off in create_app): behind a proxy's root_path, the
    # schema names that prefix as its server so "try it out" calls go through the proxy.
    app = request.app
    root_path = request.scope.get("root_path", "").rstrip("/")
    if root_path and app.root_path_in_servers and root_path not in {s.get("url") for s in app.servers}:
        app.servers.insert(0, {"url": root_path})
        app.openapi_schema = None
    return JSONResponse(app.openapi())


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    # validatorUrl None: Swagger UI would otherwise send the schema to validator.swagger.io for a badge.
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL, title="epochstream API", oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        swagger_js_url="/docs/assets/swagger-ui-bundle.js", swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png", swagger_ui_parameters={"validatorUrl": None})


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title="epochstream API",
                          redoc_js_url="/docs/assets/redoc.standalone.js",
                          redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False)


@router.get("/docs/assets/{name}")
def asset(name: str) -> FileResponse:
    # Only the shipped files, by exact name: no path from the URL reaches the file system.
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail=f"no documentation asset {name!r}")
    return FileResponse(_asset_dir() / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})
