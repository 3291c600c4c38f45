"""The hot poll, answered before routing: a conditional GET whose ETag still matches gets 304 here.

Dashboards poll `/runs/{id}` and `/runs/{id}/epochs?since=N` (and /best, /steps, /system) with
`If-None-Match` every few seconds; almost every answer is 304. This ASGI middleware answers those with one
indexed read of the run's version counters, using the very identity and ETag functions of the routes. It
only takes requests it can judge completely: a valid run id, no query or only a valid `since`, no `wait`,
the token (if any) right, the run present. Everything else, including every error, goes on to the routes.
"""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from query_api.deps import ReadContext
from query_api.etags import matches
from query_api.identities import etag_of, run_identity, series_identity
from query_api.store import RunNotFound
from schemas.envelope import RUN_ID_PATTERN

_PATH = re.compile(r"^/runs/(" + RUN_ID_PATTERN.strip("^$") + r")(?:/(epochs|best|steps|system))?$")
_QUERY = re.compile(rb"^(since=(-1|\d{1,18}))?$")


class ConditionalFastPath:
    def __init__(self, app: ASGIApp, ctx: ReadContext):
        self.app = app
        self.ctx = ctx
        token = ctx.settings.api_token
        self.auth = f"Bearer {token.get_secret_value()}".encode() if token is not None else None

    def _etag_if_unchanged(self, scope: Scope) -> str | None:
        if scope["type"] != "http" or scope["method"] != "GET" or not _QUERY.match(scope["query_string"]):
            return None
        route = _PATH.match(scope["path"])
        if route is None:
            return None
        inm = auth = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                inm = value.decode("latin-1")
            elif name == b"authorization":
                auth = value
        if inm is None or (self.auth is not None and (auth is None or not secrets.compare_digest(auth, self.auth))):
            return None
        run_id, kind = route.group(1), route.group(2)
        if kind is None and scope["query_string"]:
            return None
        try:
            identity = run_identity(self.ctx.store, run_id) if kind is None else \
                series_identity(self.ctx.store, run_id, kind)
        except (RunNotFound, Exception):  # noqa: BLE001 - anything unusual: let the route answer it properly
            return None
        etag = etag_of(run_id, identity)
        return etag if matches(inm, etag) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        etag = self._etag_if_unchanged(scope)
        if etag is None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 304,
                    "headers": [(b"etag", etag.encode()), (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": b""})
