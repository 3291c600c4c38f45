"""The wire codec: an event model to bytes and back, upcasting old versions on the way in.

Wire format: one JSON object, envelope and body fields side by side. Non-finite floats are the strings
"NaN", "Infinity" and "-Infinity" (strict JSON parsers accept them); bare NaN literals written by Python's
`json` module are accepted too, for old producers.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from schemas.envelope import EVENT_ID_MISMATCH
from schemas.errors import (
    EventIdMismatch,
    InvalidEvent,
    MalformedPayload,
    PayloadTooLarge,
    UnknownEventType,
    UnsupportedVersion,
)
from schemas.registry import CURRENT_VERSION, MODELS, Event, upcast

MAX_PAYLOAD_BYTES = 1024 * 1024


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode("utf-8")


def to_raw(event: BaseModel) -> dict[str, Any]:
    """The JSON-safe dict an event is sent as (non-finite floats as strings)."""
    return orjson.loads(encode(event))


def parse_payload(payload: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise PayloadTooLarge(len(payload), max_bytes)
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:  # Python's json accepts the NaN/Infinity literals that orjson rejects.
            raw = json.loads(payload)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
            raise MalformedPayload(f"payload is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedPayload(f"payload is JSON {type(raw).__name__}, expected an object")
    return raw


def _validate(model: type[BaseModel], raw: dict[str, Any], event_type: str, version: int) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        problems = [(".".join(str(p) for p in err["loc"]) or "event_id", err["msg"]) for err in errors]
        mismatch = any(err["type"] == EVENT_ID_MISMATCH for err in errors)
        raise (EventIdMismatch if mismatch else InvalidEvent)(event_type, version, problems) from None


def check_type_and_version(raw: dict[str, Any]) -> tuple[str, int]:
    event_type = raw.get("type")
    if not isinstance(event_type, str) or event_type not in MODELS:
        if event_type is None:
            raise InvalidEvent("event", None, [("type", "field required")])
        raise UnknownEventType(event_type, list(MODELS))
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidEvent(event_type, None, [("version", f"must be an integer, got {version!r}")])
    newest = CURRENT_VERSION[event_type]
    if version > newest:
        raise UnsupportedVersion(event_type, version, newest)
    if version not in MODELS[event_type]:
        raise InvalidEvent(event_type, version, [("version", f"no such version of {event_type}")])
    return event_type, version


def decode_raw(raw: dict[str, Any]) -> Event:
    """Validate a raw event at its own version, upcast it, and validate it as the current version."""
    event_type, version = check_type_and_version(raw)
    original = _validate(MODELS[event_type][version], raw, event_type, version)
    current = CURRENT_VERSION[event_type]
    if version == current:
        return original  # type: ignore[return-value]
    upcasted = upcast(event_type, version, original.model_dump(mode="python"))
    return _validate(MODELS[event_type][current], upcasted, event_type, current)  # type: ignore[return-value]


def decode(payload: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> Event:
    return decode_raw(parse_payload(payload, max_bytes))
