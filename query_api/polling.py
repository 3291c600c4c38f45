"""Conditional GETs and long polls, shared by every run route.

A route describes its resource with the files it is made from, a cheap `etag_of(keys)` (file identities
only, plus any read-time state) and a `render()` that reads (through the caches) and returns the body.
`If-None-Match` with the current ETag answers 304 after nothing but `stat` calls. With `wait=` the
request parks on the shared `ChangeWatcher` until those files change or the deadline passes (then 304).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response

from query_api.deps import ReadContext
from query_api.etags import matches
from query_api.filecache import FileKey
from query_api.limits import MAX_WAIT_S
from query_api.store import RunNotFound

JSON = "application/json"


@dataclass
class Answer:
    etag: str
    body: bytes
    keys: tuple[FileKey | None, ...]  # identities of the files this body was made from
    empty: bool = False  # nothing newer than `since`: worth waiting for when the client long-polls


def not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})


def ok(answer: Answer) -> Response:
    return Response(answer.body, media_type=JSON, headers={"ETag": answer.etag, "Cache-Control": "no-cache"})


async def respond(request: Request, ctx: ReadContext, run_id: str, paths: Sequence[Path],
                  etag_of: Callable[[tuple[FileKey | None, ...]], Awaitable[str]],
                  render: Callable[[], Awaitable[Answer]], wait: float | None, since_given: bool) -> Response:
    """paths[0] is the run's summary: its absence means the run does not exist (404)."""
    inm = request.headers.get("if-none-match")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait or 0.0, MAX_WAIT_S)
    last: Answer | None = None
    while True:
        keys = ctx.store.keys(*paths)
        if keys[0] is None:
            ctx.store.check_id(run_id)
            raise RunNotFound(run_id)
        etag = await etag_of(keys)
        if not matches(inm, etag):
            last = await render()
            if not (since_given and last.empty) or loop.time() >= deadline:
                return ok(last)
            keys = last.keys
        remaining = deadline - loop.time()
        if remaining <= 0:
            return not_modified(etag) if last is None else ok(last)
        await ctx.watcher.wait(paths, keys, remaining)
