"""The event contract: round trips, upcasting, typed errors, golden payloads that must decode forever."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    EpochV1,
    EpochV2,
    InvalidEvent,
    MalformedPayload,
    PayloadTooLarge,
    RunFinishedV1,
    RunStartedV1,
    SystemV1,
    UnknownEventType,
    UnsupportedVersion,
    decode,
    encode,
)
from schemas.drops import DropReport
from schemas.epoch import V1_METRIC_NAMES
from schemas.errors import EventIdMismatch
from schemas.registry import CURRENT_VERSION
from schemas.run_config import RunConfigV1
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from schemas.step import StepV1
from schemas.system import GpuSample, SystemV2

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"

any_float = st.floats(allow_nan=True, allow_infinity=True)
opt_float = st.none() | any_float
run_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,40}\Z")
metric_names = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_./:-]{0,30}\Z")
timestamps = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


def envelopes():
    fields = st.fixed_dictionaries({
        "run_id": run_ids, "seq": st.integers(0, 2**62),
        "ts": timestamps, "host": st.text(max_size=30), "pid": st.integers(0, 2**31),
    })
    return fields.map(lambda env: {**env, "event_id": f"{env['run_id']}:{env['seq']}"})  # the producer's id rule


def same(a, b) -> bool:
    """Equality where NaN equals NaN (it is data here)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


epoch_v2 = st.builds(lambda env, epoch, metrics, samples, warnings: EpochV2(
    **env, epoch=epoch, metrics=metrics, samples=samples, warnings=warnings),
    envelopes(), st.integers(0, 10**6), st.dictionaries(metric_names, any_float, max_size=8),
    st.none() | st.integers(0, 10**9), st.lists(st.text(max_size=20), max_size=3))
epoch_v1 = st.builds(lambda env, epoch, vals, samples: EpochV1(**env, epoch=epoch, samples=samples, **vals),
                     envelopes(), st.integers(0, 10**6),
                     st.fixed_dictionaries({k: opt_float for k in V1_METRIC_NAMES}), st.none() | st.integers(0, 10**9))
system_v1 = st.builds(lambda env, gpus, cpu, rss: SystemV1(**env, gpus=gpus, cpu_percent=cpu, rss_mb=rss),
                      envelopes(), st.lists(st.builds(GpuSample, index=st.integers(0, 16), mem_allocated_mb=opt_float,
                                                      utilization_pct=opt_float), max_size=4), opt_float, opt_float)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
                           | st.floats(allow_nan=False, allow_infinity=False),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
run_started_v1 = st.builds(lambda env, project, config, tags: RunStartedV1(**env, project=project, config=config,
                                                                            tags=tags),
                           envelopes(), st.text(min_size=1, max_size=30),
                           st.dictionaries(st.text(max_size=10), json_values, max_size=5),
                           st.lists(st.text(max_size=10), max_size=3))
run_finished_v1 = st.builds(
    lambda env, status, error, tb: RunFinishedV1(**env, status=status, error=error, traceback=tb),
    envelopes(), st.sampled_from(["completed", "failed", "interrupted"]),
                            st.none() | st.text(max_size=5000), st.none() | st.text(max_size=5000))


drop_reports = st.none() | st.builds(DropReport, counts=st.dictionaries(st.from_regex(r"\A[a-z_]{1,12}\Z"),
                                                                        st.integers(0, 10**6), max_size=3),
                                     examples=st.lists(st.text(max_size=40), max_size=3))
system_v2 = st.builds(lambda v1, drops: SystemV2(**{**v1.model_dump(), "version": 2}, drops=drops),
                      system_v1, drop_reports)
run_started_v2 = st.builds(
    lambda v1, monitor, mode, patience, min_delta, resume: RunStartedV2(
        **{**v1.model_dump(), "version": 2}, monitor=monitor, mode=mode, patience=patience, min_delta=min_delta,
        resume=resume),
    run_started_v1, st.none() | metric_names, st.none() | st.sampled_from(["min", "max"]),
    st.none() | st.integers(1, 100), st.none() | st.floats(0, 1), st.booleans())
run_finished_v2 = st.builds(lambda v1, drops: RunFinishedV2(**{**v1.model_dump(), "version": 2}, drops=drops),
                            run_finished_v1, drop_reports)
step_v1 = st.builds(lambda env, step, epoch, metrics: StepV1(**env, step=step, epoch=epoch, metrics=metrics),
                    envelopes(), st.integers(0, 2**40), st.none() | st.integers(0, 10**4),
                    st.dictionaries(metric_names, any_float, max_size=8))
run_config_v1 = st.builds(lambda env, config: RunConfigV1(**env, config=config), envelopes(),
                          st.dictionaries(st.text(max_size=10), json_values, max_size=5))


@given(st.one_of(epoch_v2, step_v1, system_v2, run_started_v2, run_config_v1, run_finished_v2))
def test_encode_then_decode_is_identity(event):
    decoded = decode(encode(event))
    assert type(decoded) is type(event)
    assert same(decoded.model_dump(), event.model_dump())
    assert encode(decoded) == encode(event)


@given(epoch_v1)
def test_upcast_v1_equals_the_same_data_published_as_v2(v1):
    as_v2 = EpochV2(**v1.model_dump(include={"event_id", "run_id", "seq", "ts", "host", "pid", "epoch", "samples"}),
                    metrics={new: getattr(v1, old) for old, new in V1_METRIC_NAMES.items()
                             if getattr(v1, old) is not None})
    assert same(decode(encode(v1)).model_dump(), as_v2.model_dump())


@given(st.one_of(run_started_v1, system_v1, run_finished_v1))
def test_upcast_of_v1_lifecycle_and_system_events_keeps_every_field(v1):
    decoded = decode(encode(v1))
    assert decoded.version == 2
    kept = decoded.model_dump(include=set(type(v1).model_fields) - {"version"})
    assert same(kept, v1.model_dump(exclude={"version"}))


@given(st.one_of(epoch_v2, step_v1))
def test_encoded_payload_is_strict_json(event):
    json.loads(encode(event), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.name)
def test_golden_payloads_keep_decoding(path):
    event = decode(path.read_bytes())
    assert event.version == CURRENT_VERSION[event.type]  # every stored version upcasts to the current one
    assert event.ts.tzinfo is not None


def test_golden_v1_run_started_upcasts_to_the_defaults():
    event = decode((GOLDEN / "run_started_v1.json").read_bytes())
    assert (event.monitor, event.mode, event.patience, event.min_delta, event.resume) == (None, None, None, None, False)
    assert event.config["layers"] == [3, 4, 6, 3]


def test_golden_v2_events_keep_what_v2_added():
    started = decode((GOLDEN / "run_started_v2.json").read_bytes())
    assert (started.monitor, started.mode, started.patience, started.resume) == ("val/accuracy", "max", 10, True)
    finished = decode((GOLDEN / "run_finished_v2.json").read_bytes())
    assert finished.drops.counts == {"renamed": 40, "missing": 2}
    assert decode((GOLDEN / "system_v1.json").read_bytes()).drops is None
    step = decode((GOLDEN / "step_v1.json").read_bytes())
    assert (step.step, step.epoch, step.metrics["gradient_norm"]) == (51000, 3, math.inf)
    config = decode((GOLDEN / "run_config_v1.json").read_bytes())
    assert config.config["optimizer"]["betas"] == [0.9, 0.999]


def test_golden_v1_epoch_maps_every_legacy_field():
    event = decode((GOLDEN / "epoch_v1.json").read_bytes())
    assert event.metrics == {"train/loss": 0.8123, "val/loss": 0.9011, "train/accuracy": 0.71,
                             "val/accuracy": 0.66, "learning_rate": 0.0003}
    assert event.samples == 50000 and event.epoch == 2


def test_golden_v1_with_bare_nan_literals_keeps_non_finite_values():
    event = decode((GOLDEN / "epoch_v1_nan.json").read_bytes())
    assert math.isnan(event.metrics["train/loss"]) and event.metrics["val/loss"] == math.inf
    assert event.ts == datetime(2024, 3, 1, 10, 5, tzinfo=UTC)


def test_golden_failed_run_keeps_the_whole_traceback():
    event = decode((GOLDEN / "run_finished_v1.json").read_bytes())
    assert event.traceback.endswith("Tried to allocate 2.00 GiB") and "loss.backward()" in event.traceback


GOOD = {"event_id": "r:1", "type": "epoch", "version": 2, "run_id": "r", "seq": 1, "ts": "2025-01-01T00:00:00Z",
        "epoch": 0, "metrics": {"train/loss": 1.0}}


@pytest.mark.parametrize(("change", "fragment"), [
    ({"seq": -1}, "seq"),
    ({"epoch": "seven"}, "epoch"),
    ({"metrics": {"train/loss": "high"}}, "metrics.train/loss"),
    ({"run_id": "has space"}, "run_id"),
    ({"ts": "yesterday"}, "ts"),
    ({"surprise": 1}, "surprise"),
    ({"version": "2"}, "version"),
    ({"ts": "9999-12-31T23:59:59-01:00"}, "ts"),  # past datetime.max in UTC: OverflowError, not a crash
    ({"ts": "0001-01-01T00:00:00+01:00"}, "ts"),
])
def test_invalid_events_name_the_field(change, fragment):
    with pytest.raises(InvalidEvent) as info:
        decode(json.dumps({**GOOD, **change}))
    assert fragment in str(info.value)


def test_missing_field_is_named():
    raw = dict(GOOD)
    del raw["epoch"]
    with pytest.raises(InvalidEvent, match="epoch: Field required"):
        decode(json.dumps(raw))


def test_unknown_type_and_newer_version_have_their_own_errors():
    with pytest.raises(UnknownEventType, match="'checkpoint'"):
        decode(json.dumps({**GOOD, "type": "checkpoint"}))
    with pytest.raises(UnsupportedVersion, match="upgrade"):
        decode(json.dumps({**GOOD, "version": 3}))


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'"str"',
                                     b"[" * 100_000 + b"]" * 100_000])  # too deep for orjson and for json
def test_malformed_payloads(payload):
    with pytest.raises(MalformedPayload):
        decode(payload)


def test_oversized_payload():
    with pytest.raises(PayloadTooLarge):
        decode(b"{" + b" " * (2 * 1024 * 1024) + b"}")


GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_every_golden_payload_keeps_the_id_rule_through_its_upcasts(path):
    raw = json.loads(path.read_bytes())
    event = decode(path.read_bytes())
    assert event.event_id == raw["event_id"] == f"{event.run_id}:{event.seq}"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_an_event_id_of_another_run_is_refused_at_every_type_and_version(path):
    raw = json.loads(path.read_bytes())
    hostile = {**raw, "run_id": "evil"}  # the victim's id, another run
    with pytest.raises(EventIdMismatch) as info:
        decode(json.dumps(hostile))
    reason = str(info.value)
    assert f"{raw['event_id']!r}".replace('"', "'") in reason and "'evil'" in reason
    assert f"'evil:{raw['seq']}'" in reason and "producer's rule" in reason
    assert isinstance(info.value, InvalidEvent)  # a SchemaError: terminal, dead-lettered


@pytest.mark.parametrize("event_id", ["r:2", "r", "r:01", "r:1:1", "s:1", " r:1", "r:1 "])
def test_only_the_exact_run_and_seq_form_is_accepted(event_id):
    with pytest.raises(EventIdMismatch, match="must be 'r:1'"):
        decode(json.dumps({**GOOD, "event_id": event_id}))
    assert decode(json.dumps(GOOD)).event_id == "r:1"


@given(envelopes(), st.text(min_size=1, max_size=60))
@settings(max_examples=100, deadline=None)
def test_a_built_event_obeys_the_id_rule_or_is_refused(env, other_id):
    ok = other_id == f"{env['run_id']}:{env['seq']}"
    try:
        EpochV2(**{**env, "event_id": other_id}, epoch=0)
    except ValidationError as exc:
        assert not ok and any(e["type"] == "event_id_mismatch" for e in exc.errors())
    else:
        assert ok
