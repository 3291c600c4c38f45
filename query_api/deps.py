"""What routes depend on: the app's read context and the optional bearer token check."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from epochstream.settings import Settings
from query_api.limits import RESPONSE_CACHE_BYTES, RESPONSE_CACHE_ENTRIES
from query_api.store import RunStore
from query_api.watch import ChangeWatcher


@dataclass
class Rendered:
    etag: str
    body: bytes


@dataclass
class ReadContext:
    """Everything the routes of one app share: built once in `create_app`."""

    settings: Settings
    store: RunStore
    watcher: ChangeWatcher
    rendered: OrderedDict[tuple, Rendered] = field(default_factory=OrderedDict)

    rendered_bytes: int = 0

    def remember(self, key: tuple, value: Rendered) -> Rendered:
        """Keep a rendered body; the oldest go first past the entry or byte budget (a 1,000-epoch body is ~200 KB)."""
        old = self.rendered.pop(key, None)
        self.rendered_bytes += len(value.body) - (len(old.body) if old else 0)
        self.rendered[key] = value
        while self.rendered and (len(self.rendered) > RESPONSE_CACHE_ENTRIES
                                 or self.rendered_bytes > RESPONSE_CACHE_BYTES):
            _, dropped = self.rendered.popitem(last=False)
            self.rendered_bytes -= len(dropped.body)
        return value


async def get_context(request: Request) -> ReadContext:
    return request.app.state.read


Ctx = Annotated[ReadContext, Depends(get_context)]

_bearer = HTTPBearer(auto_error=False, description="Needed only when the server sets EPOCHSTREAM_API_TOKEN.")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def require_token(ctx: Ctx, credentials: Credentials) -> None:
    token = ctx.settings.api_token
    if token is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(
            status_code=401, headers={"WWW-Authenticate": "Bearer"},
            detail="missing or wrong bearer token: send `Authorization: Bearer <token>` with the token this server "
                   "was started with (EPOCHSTREAM_API_TOKEN)")
