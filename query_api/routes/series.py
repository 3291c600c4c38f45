"""Per-run series: epoch history, best epoch, steps, system samples. All conditional and long-pollable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from query_api.arrow_answers import MEDIA_TYPE as ARROW
from query_api.arrow_answers import epochs_arrow, steps_arrow
from query_api.deps import Ctx, ReadContext, Rendered
from query_api.encoding import dumps
from query_api.identities import etag_of, series_identity
from query_api.limits import DEFAULT_STEP_ROWS, EMA_MAX_STEPS, MAX_STEP_ROWS
from query_api.models import BestPublic, EpochsPublic, StepsPublic, SystemPublic
from query_api.polling import JSON, Answer, respond
from query_api.render import best_body, epochs_body, system_body
from query_api.routes.common import RESPONSES
from query_api.routes.params import EmaParam, MaxPointsParam, MetricsParam, RunIdParam, WaitParam, invalid, metric_names
from query_api.smoothed import TooLongToSmooth, smoothed_epochs, smoothed_steps_body
from query_api.step_series import steps_body
from schemas.envelope import METRIC_NAME_PATTERN

router = APIRouter(tags=["runs"])

SinceEpoch = Annotated[int | None, Query(ge=-1, le=2**62, description="Only epochs after this one.")]
SinceStep = Annotated[int | None, Query(ge=-1, le=2**62, description="Only steps after this one.")]
SinceSeq = Annotated[int | None, Query(ge=-1, le=2**62, description="Only samples with a larger `seq` "
                                                                     "(use `last_seq` of the previous answer).")]


HISTORY_RESPONSES = {**RESPONSES, 200: {"content": {ARROW: {"schema": {"type": "string", "format": "binary"}}},
                                         "description": "JSON, or with `format=arrow` an Arrow IPC stream."}}
FormatParam = Annotated[Literal["json", "arrow"], Query(
    description="`arrow`: the same rows as an Arrow IPC stream (a long table run_id, epoch or step, metric, "
                "value; NaN and infinities as themselves), for big histories and DataFrames.")]


async def _answer(ctx: ReadContext, run_id: str, kind: str, variant: tuple, build: Callable[[], Any],
                  empty: Callable[[], bool] = lambda: False, arrow: Callable[[str, Any], bytes] | None = None
                  ) -> Answer:
    """A rendered body, cached by (route, query, data version): a repeated poll re-sends bytes, nothing else.
    With `arrow`, the body is that encoding of the JSON body (same rows)."""
    identity = series_identity(ctx.store, run_id, kind)
    etag = etag_of(run_id, identity)
    key = (kind, run_id, variant, arrow is not None, identity)
    hit = ctx.rendered.get(key)
    if hit is None:
        body = await build()
        encode = dumps if arrow is None else (lambda b: arrow(run_id, b))
        hit = ctx.remember(key, Rendered(etag, await ctx.store.in_thread(encode, body)))
    return Answer(hit.etag, hit.body, empty(), JSON if arrow is None else ARROW)


def _poll(request: Request, ctx: ReadContext, run_id: str, kind: str, render, wait: float | None, since_given: bool):
    return respond(request, ctx, lambda: series_identity(ctx.store, run_id, kind), lambda i: etag_of(run_id, i),
                   render, wait, since_given)


@router.get("/runs/{run_id}/epochs", response_model=EpochsPublic, responses=HISTORY_RESPONSES,
            summary="Epoch history, optionally only newer epochs, selected metrics, downsampled")
async def run_epochs(run_id: RunIdParam, request: Request, ctx: Ctx, since: SinceEpoch = None,
                     metrics: MetricsParam = None, max_points: MaxPointsParam = None, ema: EmaParam = None,
                     wait: WaitParam = None, format: FormatParam = "json") -> Response:  # noqa: A002
    names = metric_names(metrics)
    store = ctx.store

    async def render(_: tuple) -> Answer:
        versions = store.versions(run_id)
        record = await store.run(run_id, versions)
        series = await store.history(run_id, versions)

        async def build() -> dict:
            summary = record.summary
            shown = series if ema is None else await store.in_thread(smoothed_epochs, series, ema, names)
            body = epochs_body(run_id, shown, since=since, metrics=names, max_points=max_points,
                               best_metric=summary.get("best_metric"), best_mode=summary.get("best_mode") or "min")
            return {**body, "ema": ema}
        return await _answer(ctx, run_id, "epochs", (since, names, max_points, ema), build,
                             lambda: since is not None and not any(r.epoch > since for r in series.rows),
                             epochs_arrow if format == "arrow" else None)

    return await _poll(request, ctx, run_id, "epochs", render, wait, since is not None)


@router.get("/runs/{run_id}/steps", response_model=StepsPublic, responses=HISTORY_RESPONSES,
            summary="Step history: newer steps only, selected metrics, downsampled from rollups for long runs")
async def run_steps(run_id: RunIdParam, request: Request, ctx: Ctx, since: SinceStep = None,
                    metrics: MetricsParam = None, max_points: MaxPointsParam = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_STEP_ROWS, description=(
                        "Without max_points: at most this many rows after `since`; `next_since` says where the "
                        "next page starts."))] = DEFAULT_STEP_ROWS,
                    ema: EmaParam = None, wait: WaitParam = None,
                    format: FormatParam = "json") -> Response:  # noqa: A002
    names = metric_names(metrics)
    store = ctx.store

    async def render(_: tuple) -> Answer:
        versions = store.versions(run_id)
        record = await store.run(run_id, versions)
        summary = record.summary
        best = (summary["best_metric"], summary.get("best_mode") or "min") if summary.get("best_metric") else None
        total = summary.get("steps") or 0

        async def build() -> dict:
            if ema is not None:
                return await store.in_thread(lambda: smoothed_steps_body(
                    store.reader, run_id, version=(versions.generation, versions.steps), total=total, weight=ema,
                    since=since, metrics=names, max_points=max_points, limit=limit, best=best))
            body = await store.in_thread(lambda: steps_body(store.reader, run_id, total=total, since=since,
                                                            metrics=names, max_points=max_points, limit=limit,
                                                            best=best))
            return {**body, "ema": None}
        if ema is not None and total > EMA_MAX_STEPS:
            raise invalid("ema", ema, str(TooLongToSmooth(total)))
        last = summary.get("last_step")
        return await _answer(ctx, run_id, "steps", (since, names, max_points, limit, ema), build,
                             lambda: since is not None and (last is None or last <= since),
                             steps_arrow if format == "arrow" else None)

    return await _poll(request, ctx, run_id, "steps", render, wait, since is not None)


@router.get("/runs/{run_id}/best", response_model=BestPublic, responses=RESPONSES,
            summary="The best epoch of a metric, with all its metrics")
async def run_best(run_id: RunIdParam, request: Request, ctx: Ctx,
                   metric: Annotated[str | None, Query(pattern=METRIC_NAME_PATTERN, max_length=128,
                                                       description="Default: the run's monitored metric "
                                                                   "(val/loss, else train/loss).")] = None,
                   mode: Annotated[Literal["min", "max"] | None, Query(
                       description="min or max. Default: the run's mode for its monitored metric, else min.")] = None,
                   wait: WaitParam = None) -> Response:
    store = ctx.store

    async def render(_: tuple) -> Answer:
        versions = store.versions(run_id)
        record = await store.run(run_id, versions)
        series = await store.history(run_id, versions)
        summary = record.summary
        default_mode = summary.get("best_mode") or "min" if metric is None or metric == summary.get("best_metric") \
            else "min"
        chosen = (metric or summary.get("best_metric") or "val/loss", mode or default_mode)

        async def build() -> dict:
            return best_body(run_id, series, *chosen)
        return await _answer(ctx, run_id, "best", chosen, build)

    return await _poll(request, ctx, run_id, "best", render, wait, False)


@router.get("/runs/{run_id}/system", response_model=SystemPublic, responses=RESPONSES,
            summary="GPU and host samples, optionally only newer ones, downsampled")
async def run_system(run_id: RunIdParam, request: Request, ctx: Ctx, since: SinceSeq = None,
                     max_points: MaxPointsParam = None, wait: WaitParam = None) -> Response:
    store = ctx.store

    async def render(_: tuple) -> Answer:
        versions = store.versions(run_id)
        points = await store.system(run_id, versions)

        async def build() -> dict:
            return system_body(run_id, points, since=since, max_points=max_points)
        return await _answer(ctx, run_id, "system", (since, max_points), build,
                             lambda: since is not None and not any(p.seq is not None and p.seq > since
                                                                   for p in points))

    return await _poll(request, ctx, run_id, "system", render, wait, since is not None)
