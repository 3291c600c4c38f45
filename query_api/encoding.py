"""Strict JSON for floats: a NaN or infinite metric becomes null plus a marker saying which it was.

Stored projections keep non-finite floats as the strings "NaN", "Infinity", "-Infinity" (as on the
wire); `stored_float` turns them back into floats before `float_or_null` / `non_finite_marker` apply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

_STORED = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "+Infinity": math.inf}


def float_or_null(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def non_finite_marker(value: float | None) -> str | None:
    if value is None or math.isfinite(value):
        return None
    return "nan" if math.isnan(value) else ("+inf" if value > 0 else "-inf")


def stored_float(value: Any) -> float | None:
    """A float as stored in summary.json or the index: number, None, or one of the non-finite strings."""
    if value is None:
        return None
    if isinstance(value, str):
        if value in _STORED:
            return _STORED[value]
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def strict_metrics(metrics: Mapping[str, float | None]) -> tuple[dict[str, float | None], dict[str, str]]:
    """(values with non-finite as None, {name: "nan"|"+inf"|"-inf"} for those). One pass, no calls for the
    finite values that make up nearly every answer (a downsampled curve encodes thousands of rows)."""
    values: dict[str, float | None] = {}
    markers: dict[str, str] = {}
    isfinite = math.isfinite
    for name, value in metrics.items():
        if value is None or isfinite(value):
            values[name] = value
        else:
            values[name] = None
            markers[name] = "nan" if value != value else ("+inf" if value > 0 else "-inf")
    return values, markers


def strict_list(values: list[float | None], name: str, markers: dict[str, str]) -> list[float | None]:
    """A float list for strict JSON; markers for non-finite items are added as `name[i]`."""
    out: list[float | None] = []
    for i, value in enumerate(values):
        marker = non_finite_marker(value)
        if marker:
            markers[f"{name}[{i}]"] = marker
        out.append(float_or_null(value))
    return out


def _reject_non_finite(_: str) -> Any:
    raise ValueError("non-finite number in JSON")


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes. orjson writes NaN/inf as null, so the output is strict by construction."""
    return orjson.dumps(obj)


def strict_loads(data: bytes | str) -> Any:
    """Parse JSON and fail on NaN/Infinity: what a strict client does. Used by tests and the bench."""
    return json.loads(data, parse_constant=_reject_non_finite)
