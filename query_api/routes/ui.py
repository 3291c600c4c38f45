"""The web page at `/`: a static page (HTML, CSS, plain JS modules drawing SVG) that polls the JSON API.

Everything it needs ships in `query_api/static/`: no CDN, nothing fetched from outside at run time. The
page itself holds no data, so it is served without the API token; its requests carry one if given.

The files are small and few, so they are served from memory with an ETag (a revalidation is a 304 with no
file access), re-read only when a file's size or mtime changes. FileResponse would read each one in a
worker thread: on a busy 2-core host, ten of them at page load took ~400 ms.
The handlers are `async`: a sync one would also go through the thread pool. (A file is read, once, on the
event loop: a few KB.)
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import NamedTuple

from fastapi import APIRouter, HTTPException, Request, Response

STATIC = Path(__file__).resolve().parent.parent / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


class _Shipped(NamedTuple):
    stamp: tuple[int, int]  # (size, mtime_ns) when read
    body: bytes
    etag: str


_files: dict[str, _Shipped] = {}
_lock = threading.Lock()


def _load(name: str) -> _Shipped | None:
    # Only the files that ship, by exact name: no path from the URL ever reaches the file system.
    if "/" in name or "\\" in name or name.startswith(".") or Path(name).suffix not in MEDIA_TYPES:
        return None
    path = STATIC / name
    try:
        st = os.stat(path)
    except OSError:
        return None
    stamp = (st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _files.get(name)
        if hit is not None and hit.stamp == stamp:
            return hit
    body = path.read_bytes()
    shipped = _Shipped(stamp, body, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"')
    with _lock:
        _files[name] = shipped
    return shipped


def _file(name: str, request: Request) -> Response:
    shipped = _load(name)
    if shipped is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    headers = {"ETag": shipped.etag, "Cache-Control": "no-cache"}  # always revalidated: an upgrade shows at once
    if request.headers.get("if-none-match") == shipped.etag:
        return Response(status_code=304, headers=headers)
    return Response(shipped.body, media_type=MEDIA_TYPES[Path(name).suffix], headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    return _file("index.html", request)


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    return _file(name, request)
