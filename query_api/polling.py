"""Conditional GETs and long polls, shared by every run route.

A route describes its resource with a cheap `identity()` (the read model's version counters for what the
answer is made of, plus any read-time state such as a run turning stale; it raises RunNotFound for an
unknown run), `etag_of(identity)` and `render(identity)`, which reads (through the caches) and returns the
body. `If-None-Match` with the current ETag answers 304 after nothing but the identity query. With `wait=`
the request parks on the shared `ChangeWatcher` until the identity changes or the deadline passes (then 304).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from query_api.deps import ReadContext
from query_api.etags import matches
from query_api.limits import MAX_WAIT_S

JSON = "application/json"


@dataclass
class Answer:
    etag: str
    body: bytes
    empty: bool = False  # nothing newer than `since`: worth waiting for when the client long-polls
    media_type: str = JSON


def not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})


def ok(answer: Answer) -> Response:
    return Response(answer.body, media_type=answer.media_type,
                    headers={"ETag": answer.etag, "Cache-Control": "no-cache"})


async def respond(request: Request, ctx: ReadContext, identity: Callable[[], Any], etag_of: Callable[[Any], str],
                  render: Callable[[Any], Awaitable[Answer]], wait: float | None, since_given: bool) -> Response:
    inm = request.headers.get("if-none-match")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait or 0.0, MAX_WAIT_S)
    last: Answer | None = None
    while True:
        seen = identity()
        etag = etag_of(seen)
        if not matches(inm, etag):
            last = await render(seen)
            if not (since_given and last.empty) or loop.time() >= deadline:
                return ok(last)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return not_modified(etag) if last is None else ok(last)
        await ctx.watcher.wait(identity, seen, remaining)
