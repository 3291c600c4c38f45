"""The event contract: pydantic models (every version kept), upcasters, the wire codec. No I/O."""

from schemas.codec import decode, decode_raw, encode, to_raw
from schemas.drops import DropReport
from schemas.envelope import Envelope, utc_now
from schemas.epoch import CORE_METRICS, EpochV1, EpochV2
from schemas.errors import (
    InvalidEvent,
    MalformedPayload,
    PayloadTooLarge,
    SchemaError,
    UnknownEventType,
    UnsupportedVersion,
)
from schemas.keys import Keys, partition_of
from schemas.registry import CURRENT_VERSION, MODELS, Event
from schemas.run_config import RunConfigV1
from schemas.run_finished import RunFinishedV1, RunFinishedV2
from schemas.run_started import RunStartedV1, RunStartedV2
from schemas.step import StepV1
from schemas.system import GpuSample, SystemV1, SystemV2

__all__ = [
    "CORE_METRICS", "CURRENT_VERSION", "MODELS", "DropReport", "Envelope", "EpochV1", "EpochV2", "Event",
    "GpuSample", "InvalidEvent", "Keys", "MalformedPayload", "PayloadTooLarge", "RunConfigV1", "RunFinishedV1",
    "RunFinishedV2", "RunStartedV1", "RunStartedV2", "SchemaError", "StepV1", "SystemV1", "SystemV2",
    "UnknownEventType", "UnsupportedVersion", "decode", "decode_raw", "encode", "partition_of", "to_raw", "utc_now",
]
