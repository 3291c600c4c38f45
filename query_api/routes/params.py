"""Query and path parameters shared by the run routes, with their limits and docs."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path, Query
from fastapi.exceptions import RequestValidationError

from query_api.limits import EMA_MAX_STEPS, MAX_METRICS, MAX_POINTS, MAX_WAIT_S, MIN_POINTS
from schemas.envelope import METRIC_NAME_PATTERN, RUN_ID_PATTERN

_METRIC = re.compile(METRIC_NAME_PATTERN)

RunIdParam = Annotated[str, Path(pattern=RUN_ID_PATTERN, max_length=128,
                                 description="Run identifier: letters, digits, _ . : - (at most 128).")]
WaitParam = Annotated[float | None, Query(
    ge=0, allow_inf_nan=False,
    description=f"Long poll: hold the request up to this many seconds (capped at {MAX_WAIT_S:g}) until the run's "
                "data changes from what `If-None-Match` names, or rows newer than `since` exist. At the deadline: "
                "304 if `If-None-Match` still matches, else the current (empty) answer.")]
MaxPointsParam = Annotated[int | None, Query(
    ge=MIN_POINTS, le=MAX_POINTS,
    description="Downsample to at most this many points, deterministically, keeping the first, last, best, "
                "minimum and maximum points.")]
EmaParam = Annotated[float | None, Query(
    gt=0, lt=1, allow_inf_nan=False,
    description="Smooth every value with an exponential moving average of this history weight (TensorBoard's "
                "smoothing: s = w * s_prev + (1 - w) * x, debiased by dividing by 1 - w^n), computed over every "
                "stored point before `since` and downsampling apply; NaN/inf pass through unsmoothed. On "
                f"/steps, runs of more than {EMA_MAX_STEPS:,} steps are refused with 422.")]
MetricsParam = Annotated[list[str] | None, Query(
    max_length=MAX_METRICS,
    description="Only these metrics (repeat the parameter or separate names with commas). Default: all.")]


def metric_names(raw: list[str] | None) -> tuple[str, ...] | None:
    """Split comma lists, validate each name; 422 with the offending name when one is malformed."""
    if not raw:
        return None
    names = tuple(dict.fromkeys(n.strip() for item in raw for n in item.split(",") if n.strip()))
    bad = [n for n in names if not _METRIC.match(n)]
    if bad or len(names) > MAX_METRICS:
        raise invalid("metrics", raw, f"bad metric name(s) {bad[:5]!r}: letters, digits and _ . / : - only, "
                                      f"at most 128 characters, at most {MAX_METRICS} names")
    return names or None


def invalid(name: str, value: object, message: str) -> RequestValidationError:
    """A 422 in FastAPI's documented shape (`detail` is a list of errors), for checks done by hand."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}])
