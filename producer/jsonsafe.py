"""Configs as JSON: whatever training code passes as `config=` becomes plain JSON values, never an error.

NumPy scalars and 0-d tensors become numbers, small arrays and tensors lists, Paths strings, enums their
values, datetimes ISO strings, dataclasses and pydantic models dicts; anything else its `repr`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import numbers
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

MAX_DEPTH = 32
MAX_ELEMENTS = 64  # a larger array or tensor is described, not copied
MAX_REPR = 1000
_INT64 = 2**63 - 1


def json_safe(value: Any) -> Any:
    """A JSON-safe copy of `value`. Never raises."""
    try:
        return _convert(value, 0)
    except Exception:  # noqa: BLE001 - a config must never stop a run from starting
        return _describe(value)


def _convert(value: Any, depth: int) -> Any:
    if value is None or type(value) in (bool, str, float):
        return value
    if type(value) is int:
        return value if -_INT64 <= value <= _INT64 else str(value)
    if depth >= MAX_DEPTH:
        return _describe(value)
    if isinstance(value, enum.Enum):
        return _convert(value.value, depth + 1)
    if isinstance(value, str):  # subclasses of the plain types (NumPy's float64 is a float)
        return str.__str__(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return _convert(int(value), depth)
    if isinstance(value, Mapping):
        return {_key(k): _convert(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_convert(v, depth + 1) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _convert(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump") and not isinstance(value, type):  # pydantic
        return _convert(value.model_dump(mode="json"), depth + 1)
    if _is_array(value):
        return _array(value, depth)
    if isinstance(value, numbers.Integral):
        return _convert(int(value), depth + 1)
    if isinstance(value, numbers.Real):
        return float(value)
    return _describe(value)


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and (hasattr(value, "tolist") or hasattr(value, "item"))


def _array(value: Any, depth: int) -> Any:
    """NumPy arrays and scalars, torch tensors: by size, never importing either library."""
    size = getattr(value, "size", None)
    numel = size() if callable(size) else size  # torch: .size() is the shape; .numel() the count
    if hasattr(value, "numel"):
        numel = value.numel()
    if numel == 1 and hasattr(value, "item") and len(tuple(value.shape)) == 0:
        return _convert(value.item(), depth + 1)
    if isinstance(numel, int) and numel <= MAX_ELEMENTS and hasattr(value, "tolist"):
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        return _convert(value.tolist(), depth + 1)
    return _describe(value)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(_convert(key, MAX_DEPTH - 1))


def _describe(value: Any) -> str:
    try:
        shape = getattr(value, "shape", None)
        if shape is not None:
            return f"<{type(value).__name__} shape={tuple(shape)} dtype={getattr(value, 'dtype', '?')}>"
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "..."


def as_config(config: Any) -> dict[str, Any]:
    """A dict of JSON values from a dict, a dataclass, a pydantic model or an argparse Namespace."""
    if config is None:
        return {}
    if not isinstance(config, Mapping) and hasattr(config, "__dict__") and not hasattr(config, "model_dump") \
            and not dataclasses.is_dataclass(config):
        config = vars(config)
    safe = json_safe(config)
    return safe if isinstance(safe, dict) else {"config": safe}
