"""The run listing and the run summary."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from epochstream.readmodel.listing import BadCursor, RunQuery
from query_api.deps import Ctx, Rendered
from query_api.encoding import dumps
from query_api.etags import make_etag, matches
from query_api.identities import etag_of, now_us, run_identity
from query_api.limits import DEFAULT_PAGE, MAX_PAGE
from query_api.models import RunPublic, RunsPagePublic
from query_api.polling import Answer, not_modified, ok, respond
from query_api.render import list_item, run_body, run_status
from query_api.routes.common import LIST_RESPONSES, RESPONSES
from query_api.routes.params import RunIdParam, WaitParam, invalid
from query_api.series import epoch_series

router = APIRouter(tags=["runs"])

CursorParam = Annotated[str | None, Query(max_length=1024, pattern=r"^[A-Za-z0-9_-]*$",
                                          description="`next_cursor` of the previous page (same filters and sort).")]
StatusFilter = Literal["running", "completed", "failed", "interrupted", "stale"]
SortParam = Literal["newest", "oldest", "best", "best_desc", "epochs"]


@router.get("/runs", response_model=RunsPagePublic, responses=LIST_RESPONSES,
            summary="Runs filtered by project, status, tag and name, sorted, one page at a time")
async def list_runs(request: Request, ctx: Ctx,
                    project: Annotated[str | None, Query(max_length=200, description="Only this project.")] = None,
                    status: Annotated[StatusFilter | None, Query(
                        description="Only runs with this status (`stale` is decided at read time).")] = None,
                    tag: Annotated[str | None, Query(max_length=200, description="Only runs with this tag.")] = None,
                    name: Annotated[str | None, Query(max_length=200,
                                                      description="Only runs whose name starts with this.")] = None,
                    q: Annotated[str | None, Query(max_length=200, description="Only runs whose name or id contains "
                                                                               "this (case-insensitive).")] = None,
                    sort: Annotated[SortParam, Query(description="newest (default), oldest, best (lowest best value "
                                                                 "first), best_desc, epochs (most first).")] = "newest",
                    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = DEFAULT_PAGE,
                    cursor: CursorParam = None) -> Response:
    query = RunQuery(project=project, status=status, tag=tag, name_prefix=name, search=q, sort=sort, limit=limit,
                     cursor=cursor)
    now = datetime.now(UTC)
    try:
        page = await ctx.store.in_thread(ctx.store.reader.list_runs, query, now)
    except BadCursor as exc:
        raise invalid("cursor", cursor, str(exc)) from None
    stamp = now_us()
    reader = ctx.store.reader

    def history(run_id: str):
        return lambda: epoch_series(reader.epochs(run_id)).rows  # only for a state an older version stored

    items = await ctx.store.in_thread(lambda: [list_item(summary, versions, state, stamp, history(summary["run_id"]))
                                               for summary, versions, state in page.runs])
    body = dumps({"runs": items,
                  "next_cursor": page.next_cursor, "limit": limit, "total": page.total})
    # The body holds read-time staleness too: hashing it is exact and cheap.
    etag = make_etag("runs", hashlib.blake2b(body, digest_size=16).digest())
    if matches(request.headers.get("if-none-match"), etag):
        return not_modified(etag)
    return ok(Answer(etag, body))


@router.get("/runs/{run_id}", response_model=RunPublic, responses=RESPONSES,
            summary="One run: status, config, full error, attempts, drops, best epoch, final loss, trend flags")
async def get_run(run_id: RunIdParam, request: Request, ctx: Ctx, wait: WaitParam = None) -> Response:
    store = ctx.store

    async def render(_: tuple) -> Answer:
        versions = store.versions(run_id)  # the body and its ETag from one and the same read
        identity = ("run", versions.generation, versions.version, run_status(versions, now_us()))
        etag = etag_of(run_id, identity)
        cached = ctx.rendered.get(("run", run_id, identity))
        if cached is not None:
            return Answer(cached.etag, cached.body)
        record = await store.run(run_id, versions)
        series = await store.history(run_id, versions)
        body = await store.in_thread(lambda: dumps(run_body(record, series, now_us())))
        ctx.remember(("run", run_id, identity), Rendered(etag, body))
        return Answer(etag, body)

    return await respond(request, ctx, lambda: run_identity(store, run_id), lambda i: etag_of(run_id, i), render,
                         wait, False)
