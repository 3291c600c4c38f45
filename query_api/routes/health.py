"""Liveness: no token needed, no data read."""

from __future__ import annotations

from fastapi import APIRouter

from query_api.deps import Ctx
from query_api.models import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, summary="Liveness (no token needed)")
async def healthz(ctx: Ctx) -> HealthPublic:
    root = ctx.settings.data_dir
    return HealthPublic(data_dir=str(root), data_dir_exists=root.is_dir())
