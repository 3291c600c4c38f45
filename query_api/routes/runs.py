"""Run routes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from query_api.encoding import strict_metrics
from query_api.models import BestPublic, EpochPublic, EpochsPublic
from query_api.store import ProjectionStore
from workers.trends import EpochRow, best_epoch

router = APIRouter()


def get_store(request: Request) -> ProjectionStore:
    return request.app.state.store


Store = Annotated[ProjectionStore, Depends(get_store)]


def _public(row: EpochRow) -> EpochPublic:
    values, markers = strict_metrics(row.metrics)
    return EpochPublic(epoch=row.epoch, metrics=values, non_finite=markers)


@router.get("/runs/{run_id}/epochs", response_model=EpochsPublic)
def run_epochs(run_id: str, store: Store, since: Annotated[int | None, Query(ge=-1)] = None) -> EpochsPublic:
    rows = store.history(run_id)
    if since is not None:
        rows = [r for r in rows if r.epoch > since]
    return EpochsPublic(run_id=run_id, epochs=[_public(r) for r in rows])


@router.get("/runs/{run_id}/best", response_model=BestPublic)
def run_best(run_id: str, store: Store, metric: str = "val/loss",
             mode: Literal["min", "max"] = "min") -> BestPublic:
    rows = store.history(run_id)
    best = best_epoch(rows, metric, mode)
    row = next((r for r in rows if best and r.epoch == best.epoch), None)
    return BestPublic(run_id=run_id, metric=metric, mode=mode, epoch=_public(row) if row else None)
