"""The web page at `/`: a static page (HTML, CSS, plain JS drawing SVG) that polls the JSON API.

Everything it needs ships in `query_api/static/`: no CDN, nothing fetched from outside at run time. The
page itself holds no data, so it is served without the API token; its requests carry one if given.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    # Only the files that ship, by exact name: no path from the URL ever reaches the file system.
    shipped = {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES}
    path = shipped.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/")
def index() -> FileResponse:
    return _file("index.html")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    return _file(name)
