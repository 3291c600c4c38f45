"""The run listing and the run summary."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response

from query_api.deps import Ctx, Rendered
from query_api.encoding import dumps
from query_api.etags import make_etag, matches
from query_api.limits import DEFAULT_PAGE, MAX_PAGE
from query_api.models import RunPublic, RunsPagePublic
from query_api.paging import BadCursor, decode_cursor, encode_cursor
from query_api.polling import Answer, not_modified, ok, respond
from query_api.render import list_item, run_body, run_status
from query_api.routes.common import LIST_RESPONSES, RESPONSES
from query_api.routes.params import RunIdParam, WaitParam, invalid

router = APIRouter(tags=["runs"])

CursorParam = Annotated[str | None, Query(max_length=1024, pattern=r"^[A-Za-z0-9_-]*$",
                                          description="`next_cursor` of the previous page.")]
StatusFilter = Literal["running", "completed", "failed", "interrupted", "stale"]


@router.get("/runs", response_model=RunsPagePublic, responses=LIST_RESPONSES,
            summary="Runs, newest first, filtered by project and status, one page at a time")
async def list_runs(request: Request, ctx: Ctx,
                    project: Annotated[str | None, Query(max_length=200, description="Only this project.")] = None,
                    status: Annotated[StatusFilter | None, Query(
                        description="Only runs with this status (`stale` is decided at read time).")] = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = DEFAULT_PAGE,
                    cursor: CursorParam = None) -> Response:
    try:
        after = decode_cursor(cursor) if cursor else None
    except BadCursor as exc:
        raise invalid("cursor", cursor, str(exc)) from None
    now = datetime.now(UTC)
    identity = ctx.store.index_identity()  # a few stats: the index files (or, before there is one, summaries)
    index = ctx.store.cached_index(identity)
    if index is None:
        _, index = await anyio.to_thread.run_sync(ctx.store.run_index, identity)
    rows, next_key = index.select(limit=limit, after=after, project=project, status=status, now=now)
    body = dumps({"runs": [list_item(r, now) for r in rows],
                  "next_cursor": encode_cursor(next_key) if next_key else None, "limit": limit})
    # The body is built from the in-memory index (read-time staleness included): hashing it is exact and cheap.
    etag = make_etag("runs", hashlib.blake2b(body, digest_size=16).digest())
    if matches(request.headers.get("if-none-match"), etag):
        return not_modified(etag)
    return ok(Answer(etag, body, ()))


@router.get("/runs/{run_id}", response_model=RunPublic, responses=RESPONSES,
            summary="One run: status, config, full error, best epoch, final loss, trend flags, ingest lag")
async def get_run(run_id: RunIdParam, request: Request, ctx: Ctx, wait: WaitParam = None) -> Response:
    store = ctx.store
    paths = (store.summary_path(run_id), store.epochs_path(run_id))

    async def etag_of(keys) -> str:
        _, summary = await store.summary(run_id)
        return make_etag("run", run_id, keys, run_status(summary, datetime.now(UTC)))

    async def render() -> Answer:
        skey, summary = await store.summary(run_id)
        hkey, series = await store.history(run_id)
        now = datetime.now(UTC)
        status = run_status(summary, now)
        etag = make_etag("run", run_id, (skey, hkey), status)
        cache_key = ("run", run_id, skey, hkey, status)  # the body is a function of exactly these
        body = ctx.rendered.get(cache_key)
        if body is None:
            public = run_body(summary, series, now).model_dump(mode="json")
            body = ctx.remember(cache_key, Rendered(etag, dumps(public)))
        return Answer(etag, body.body, (skey, hkey))

    return await respond(request, ctx, run_id, paths, etag_of, render, wait, False)
