"""Per-run series: epoch history, best epoch, system samples. All conditional and long-pollable."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response

from query_api.deps import Ctx, Rendered
from query_api.encoding import dumps
from query_api.etags import make_etag
from query_api.models import BestPublic, EpochsPublic, SystemPublic
from query_api.polling import Answer, respond
from query_api.render import best_body, epochs_body, system_body
from query_api.routes.common import RESPONSES
from query_api.routes.params import MaxPointsParam, MetricsParam, RunIdParam, WaitParam, metric_names
from schemas.envelope import METRIC_NAME_PATTERN

router = APIRouter(tags=["runs"])

SinceEpoch = Annotated[int | None, Query(ge=-1, le=2**62, description="Only epochs after this one.")]
SinceSeq = Annotated[int | None, Query(ge=-1, le=2**62, description="Only samples with a larger `seq` "
                                                                     "(use `last_seq` of the previous answer).")]


def etag_for(kind: str, run_id: str, key) -> str:
    """The ETag names the version of the run's data, not the query: a client may fetch everything once and
    then long-poll with `since=` and that ETag (ETags are compared per URL, so sharing one is sound)."""
    return make_etag(kind, run_id, key)


async def _render(ctx: Ctx, etag: str, cache_key: tuple, build) -> Rendered:
    """Bodies are cached by (route, query, file identity): a repeated poll re-sends bytes, nothing else."""
    hit = ctx.rendered.get(cache_key)
    if hit is not None:
        return hit
    body = await anyio.to_thread.run_sync(lambda: dumps(build()))
    return ctx.remember(cache_key, Rendered(etag, body))


@router.get("/runs/{run_id}/epochs", response_model=EpochsPublic, responses=RESPONSES,
            summary="Epoch history, optionally only newer epochs, selected metrics, downsampled")
async def run_epochs(run_id: RunIdParam, request: Request, ctx: Ctx, since: SinceEpoch = None,
                     metrics: MetricsParam = None, max_points: MaxPointsParam = None,
                     wait: WaitParam = None) -> Response:
    names = metric_names(metrics)
    store = ctx.store
    paths = (store.summary_path(run_id), store.epochs_path(run_id))
    variant = ("epochs", run_id, since, names, max_points)

    async def etag_of(keys) -> str:
        return etag_for("epochs", run_id, keys[1])

    async def render() -> Answer:
        _, summary = await store.summary(run_id)
        key, series = await store.history(run_id)
        body = await _render(ctx, etag_for("epochs", run_id, key), (*variant, key), lambda: epochs_body(
            run_id, series, since=since, metrics=names, max_points=max_points,
            best_metric=summary.best_metric, best_mode=summary.best_mode))
        empty = not any(r.epoch > since for r in series.rows) if since is not None else False
        return Answer(body.etag, body.body, (store.keys(paths[0])[0], key), empty)

    return await respond(request, ctx, run_id, paths, etag_of, render, wait, since is not None)


@router.get("/runs/{run_id}/best", response_model=BestPublic, responses=RESPONSES,
            summary="The best epoch of a metric, with all its metrics")
async def run_best(run_id: RunIdParam, request: Request, ctx: Ctx,
                   metric: Annotated[str | None, Query(pattern=METRIC_NAME_PATTERN, max_length=128,
                                                       description="Default: the run's best metric "
                                                                   "(val/loss, else train/loss).")] = None,
                   mode: Annotated[Literal["min", "max"] | None, Query(
                       description="min or max. Default: the run's mode for its best metric, else min.")] = None,
                   wait: WaitParam = None) -> Response:
    store = ctx.store
    paths = (store.summary_path(run_id), store.epochs_path(run_id))

    async def choice() -> tuple[str, Literal["min", "max"]]:
        if metric is not None and mode is not None:
            return metric, mode
        _, summary = await store.summary(run_id)
        m = summary
        default_mode = m.best_mode if metric is None or metric == m.best_metric else "min"
        return metric or m.best_metric or "val/loss", mode or default_mode

    async def etag_of(keys) -> str:
        return etag_for("best", run_id, keys[1])

    async def render() -> Answer:
        chosen_metric, chosen_mode = await choice()
        key, series = await store.history(run_id)
        cache_key = ("best", run_id, chosen_metric, chosen_mode, key)
        body = await _render(ctx, etag_for("best", run_id, key), cache_key,
                             lambda: best_body(run_id, series, chosen_metric, chosen_mode))
        return Answer(body.etag, body.body, (store.keys(paths[0])[0], key))

    return await respond(request, ctx, run_id, paths, etag_of, render, wait, False)


@router.get("/runs/{run_id}/system", response_model=SystemPublic, responses=RESPONSES,
            summary="GPU and host samples, optionally only newer ones, downsampled")
async def run_system(run_id: RunIdParam, request: Request, ctx: Ctx, since: SinceSeq = None,
                     max_points: MaxPointsParam = None, wait: WaitParam = None) -> Response:
    store = ctx.store
    paths = (store.summary_path(run_id), store.system_path(run_id))
    variant = ("system", run_id, since, max_points)

    async def etag_of(keys) -> str:
        return etag_for("system", run_id, keys[1])

    async def render() -> Answer:
        await store.summary(run_id)
        key, points = await store.system(run_id)
        body = await _render(ctx, etag_for("system", run_id, key), (*variant, key),
                             lambda: system_body(run_id, points, since=since, max_points=max_points))
        empty = not any(p.seq is not None and p.seq > since for p in points) if since is not None else False
        return Answer(body.etag, body.body, (store.keys(paths[0])[0], key), empty)

    return await respond(request, ctx, run_id, paths, etag_of, render, wait, since is not None)
