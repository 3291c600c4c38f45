"""The API reference at `/docs` (Swagger UI) and `/redoc` (ReDoc), working with no network at all.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank offline or behind a firewall. The
assets here come from the `fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1, and ReDoc's
standalone bundle), served by exact name like the web page's files. Like `/openapi.json`, the reference
holds no data and needs no token.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
          "redoc.standalone.js": "text/javascript; charset=utf-8", "favicon.png": "image/png"}
OPENAPI_URL = "/openapi.json"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def _asset_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


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
