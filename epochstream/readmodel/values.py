"""How values sit in the read model's columns: timestamps as integer microseconds, metric maps as JSON text.

SQLite keeps no NaN (a NaN REAL reads back as NULL), and JSON has no NaN or infinity, so a non-finite metric
is stored as the text "NaN", "Infinity" or "-Infinity" inside the JSON (as on the wire) and read back as the
float. Pure: no database here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_TEXT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MARKERS = (b'"NaN"', b'Infinity"')


def to_us(when: datetime | None) -> int | None:
    return None if when is None else (when - EPOCH) // _US


def from_us(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


def iso(us: int | None) -> str | None:
    when = from_us(us)
    return None if when is None else when.isoformat()


def _text(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def metrics_json(metrics: Mapping[str, float]) -> str:
    for value in metrics.values():
        if not math.isfinite(value):
            return orjson.dumps({k: v if math.isfinite(v) else _text(v) for k, v in metrics.items()}).decode()
    return orjson.dumps(metrics).decode()


def metrics_from_json(data: bytes | str) -> dict[str, float]:
    raw = data.encode() if isinstance(data, str) else data
    metrics = orjson.loads(raw)
    if any(marker in raw for marker in _MARKERS):
        return {k: _TEXT.get(v, v) if isinstance(v, str) else v for k, v in metrics.items()}
    return metrics


def json_safe_float(value: float | None) -> float | str | None:
    """A float for a JSON document of ours (summary): non-finite as the wire's text."""
    if value is None or math.isfinite(value):
        return value
    return _text(value)


def stored_float(value: Any) -> float | None:
    if isinstance(value, str):
        return _TEXT.get(value)
    return value


def json_text(document: Any) -> str:
    """JSON text for a TEXT column (bytes would be stored as a BLOB)."""
    return orjson.dumps(document).decode()


def config_json(config: Mapping[str, Any]) -> str:
    """Hyper-parameters as JSON text. orjson stops at 255 levels of nesting; Python's json goes deeper, and
    a config the codec accepted is never refused here."""
    try:
        return orjson.dumps(config, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except orjson.JSONEncodeError:
        return json.dumps(config, default=str)


def config_from_json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = json.loads(text)  # deeper than orjson reads
    return value if isinstance(value, dict) else {"config": value}
