"""Planning one run's slice of a batch: the rows that change and the run's new summary.

Everything here is a function of the run's *set* of events (by identity), however they were batched,
ordered or redelivered, so the incremental read model equals `rebuild(log)`:
- epochs: for one epoch number the highest seq wins; an attempt's epochs hide earlier attempts' epochs from
  the first epoch it logs (a resumed run rewinds to its checkpoint);
- the trend state is the fold of the visible epochs in epoch order (`schemas.trend_state`);
- lifecycle (status, attempts, config, ...): `schemas.lifecycle.summarise` over the run's lifecycle events;
- system samples: one per event id; the drop report: the newest (by seq) that any event carried.
The common case — new epochs after the last one, from entries above the applied position — costs a fold
of the new rows only. Anything else (a rewind, a late or repeated epoch, a changed monitor) refolds the
run's epoch history: bounded by that run's epochs, never by its steps or by other runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from epochstream.readmodel.batch import Item, RunSlice, StoredRun
from epochstream.readmodel.lookup import Lookup, StoredEpoch
from epochstream.readmodel.steps import StepOutcome, plan_steps
from epochstream.readmodel.values import (
    config_json,
    json_safe_float,
    json_text,
    metrics_from_json,
    metrics_json,
    to_us,
)
from epochstream.readmodel.writes import Writes
from schemas.lifecycle import Lifecycle, LifecycleEvent, summarise
from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import TrendState, fold, needs_refold

STALE_FLOOR_S = 60.0
SURVIVED_DROPS = frozenset({"renamed"})  # drop kinds whose value was kept (under another name)


def new_summary(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "project": None, "name": None, "status": "running", "tags": [], "host": None,
            "started_at": None, "finished_at": None, "last_seen": None, "heartbeat_s": None, "error": None,
            "traceback": None, "exit_code": None, "duration_s": None, "epochs": 0, "last_epoch": None, "steps": 0,
            "last_step": None, "system_samples": 0, "best_metric": None, "best_mode": "min", "best_epoch": None,
            "best_value": None, "final_loss": None, "patience": None, "min_delta": None,
            "last_seq": 0, "events": 0, "attempts": [], "drops": None, "drops_seq": -1, "dropped": 0,
            "clock_ahead_s": None, "lifecycle_events": 0, "trend_config": [None, None, None, None],
            "last_seen_us": None, "started_us": None, "version": 0, "ingested_at": None}


@dataclass
class EpochOutcome:
    state: TrendState
    count: int
    changed: bool  # rows were added, replaced or hidden
    refolded: bool = False  # the state was folded again from the history (new monitor, damaged state)


# -- lifecycle -------------------------------------------------------------------------------------------
def _lifecycle_body(event: Any) -> tuple[dict[str, Any], str | None]:
    body = {k: v for k, v in event.__dict__.items()
            if k not in ("event_id", "run_id", "seq", "ts", "type", "version", "config", "drops")}
    config = event.__dict__.get("config")
    return body, None if config is None else config_json(config)


def plan_lifecycle(run: RunSlice, stored: StoredRun | None, lookup: Lookup, writes: Writes) -> Lifecycle | None:
    """The run's lifecycle when this batch adds a lifecycle event (or the run is being recovered), else None."""
    damaged = stored is not None and stored.damaged
    if not run.lifecycle and not damaged:
        return None
    known = lookup.lifecycle(run.run_id) if stored is not None else []
    added: list[LifecycleEvent] = []
    for item in run.lifecycle:  # new events only: the writer dropped what was applied before
        event = item.event
        ts = item.order_ts
        body, config = _lifecycle_body(event)
        writes.add("run_events", run.run_id, event.event_id, event.seq, event.type, to_us(ts), json_text(body),
                   config)
        if config is not None:
            body = {**body, "config": event.config}
        added.append(LifecycleEvent(event.type, event.seq, event.event_id, ts, body))
    return summarise(known + added) if added or damaged else None


def apply_lifecycle(summary: dict[str, Any], life: Lifecycle) -> None:
    summary.update(
        project=life.project, name=life.name, tags=life.tags, host=life.host, heartbeat_s=life.heartbeat_s,
        started_at=life.started_at.isoformat() if life.started_at else None, started_us=to_us(life.started_at),
        status=life.status, error=life.error, traceback=life.traceback, exit_code=life.exit_code,
        finished_at=life.finished_at.isoformat() if life.finished_at else None, duration_s=life.duration_s,
        attempts=[a.public() for a in life.attempts], patience=life.trend_config.patience,
        min_delta=life.trend_config.min_delta, trend_config=list(life.trend_config.key()[:4]))


# -- epochs ----------------------------------------------------------------------------------------------
def _fast_epochs(items: list[Item], state: TrendState | None, config: TrendConfig, starts: list[int]) -> bool:
    latest_start = starts[-1] if starts else -1
    previous = state.last_epoch if state is not None else None
    for item in items:
        epoch = item.event.epoch
        if (previous is not None and epoch <= previous) or item.event.seq < latest_start:
            return False
        previous = epoch
    return not (items and needs_refold(state, items[0].event.epoch, config))


def _epoch_row(run_id: str, event: Any) -> tuple:
    return (run_id, event.epoch, event.seq, event.event_id, to_us(event.ts), event.samples,
            metrics_json(event.metrics))


def visible(rows: dict[int, StoredEpoch], starts: list[int]) -> dict[int, StoredEpoch]:
    """Hide what a later attempt rewound: rows older than an attempt's start, at or after the first epoch
    (or step) that attempt logged."""
    out = dict(rows)
    for start in starts[1:]:
        later = [key for key, row in out.items() if row.seq > start]
        if not later:
            continue
        cut = min(later)
        for key in [k for k, row in out.items() if row.seq < start and k >= cut]:
            del out[key]
    return out


def plan_epochs(run: RunSlice, stored: StoredRun | None, lookup: Lookup, config: TrendConfig, starts: list[int],
                must_refold: bool, writes: Writes) -> EpochOutcome:
    """`must_refold`: the monitor or the attempt boundaries changed, so the visible history and its fold may
    have too."""
    items = sorted(run.epochs, key=lambda i: i.event.seq)
    state = stored.trend_state if stored is not None else None
    count = stored.summary.get("epochs", 0) if stored is not None else 0
    if stored is not None and (state is None or must_refold):
        return _refold(run, lookup.epochs(run.run_id), items, config, starts, writes, None)
    if not items:
        return EpochOutcome(state if state is not None else fold(None, [], config), count, False)
    if _fast_epochs(items, state, config, starts):
        writes.extend("epochs_upsert", [_epoch_row(run.run_id, i.event) for i in items])
        rows = [EpochRow(i.event.epoch, i.event.metrics) for i in items]
        return EpochOutcome(fold(state, rows, config), count + len(items), True)
    return _refold(run, lookup.epochs(run.run_id) if stored is not None else {}, items, config, starts, writes,
                   state)


def _refold(run: RunSlice, stored_rows: dict[int, StoredEpoch], items: list[Item], config: TrendConfig,
            starts: list[int], writes: Writes, state: TrendState | None) -> EpochOutcome:
    """Merge `items` into the run's whole epoch history and fold it again. `state`: the valid stored state,
    kept as it is when the history does not change (None: fold in any case)."""
    merged = dict(stored_rows)
    for item in items:
        event = item.event
        mine = merged.get(event.epoch)
        if mine is None or (event.seq, event.event_id) > (mine.seq, mine.event_id):
            merged[event.epoch] = StoredEpoch(event.seq, event.event_id, to_us(event.ts), event.samples,
                                              metrics_json(event.metrics))
    final = visible(merged, starts)
    if final == stored_rows and state is not None:
        return EpochOutcome(state, len(final), False)
    for epoch in stored_rows:
        if epoch not in final:
            writes.add("epochs_delete", run.run_id, epoch)
    for epoch, row in final.items():
        if stored_rows.get(epoch) != row:
            writes.add("epochs_upsert", run.run_id, epoch, row.seq, row.event_id, row.ts_us, row.samples, row.metrics)
    history = [EpochRow(e, metrics_from_json(final[e].metrics)) for e in sorted(final)]
    return EpochOutcome(fold(None, history, config), len(final), final != stored_rows, refolded=True)


# -- system ----------------------------------------------------------------------------------------------
def _finite_or_text(value: Any) -> Any:
    return json_safe_float(value) if isinstance(value, float) else value


def system_json(event: Any) -> bytes:
    gpus = [{k: _finite_or_text(v) for k, v in gpu.__dict__.items()} for gpu in event.gpus]
    return json_text({"cpu_percent": _finite_or_text(event.cpu_percent),
                         "rss_mb": _finite_or_text(event.rss_mb), "gpus": gpus})


def plan_system(run: RunSlice, writes: Writes) -> int:
    for item in run.system:  # new events only: the writer dropped what was applied before
        event = item.event
        ts = item.order_ts
        writes.add("system_insert", run.run_id, event.event_id, event.seq, to_us(ts), system_json(event))
    return len(run.system)


# -- the summary -----------------------------------------------------------------------------------------
def _touch(summary: dict[str, Any], run: RunSlice) -> None:
    """Newest event time (clamped) and seq of anything in the batch: the heartbeat. A producer clock
    running ahead is noted as the largest lead seen (order-independent, like everything here)."""
    newest, last_seq, ahead = None, summary.get("last_seq", 0), summary.get("clock_ahead_s")
    for item in run.items():
        event = item.event
        ts, lead = item.order_ts, item.clock_ahead_s
        if lead is not None:
            ahead = lead if ahead is None else max(ahead, lead)
        if newest is None or ts > newest:
            newest = ts
        if event.seq > last_seq:
            last_seq = event.seq
    seen_us = summary.get("last_seen_us")
    if newest is not None and (seen_us is None or to_us(newest) > seen_us):
        summary["last_seen_us"] = to_us(newest)
        summary["last_seen"] = newest.isoformat()
    summary["last_seq"], summary["clock_ahead_s"] = last_seq, ahead


def _drops(summary: dict[str, Any], run: RunSlice) -> None:
    for item in [*run.system, *run.lifecycle]:
        drops = getattr(item.event, "drops", None)
        if drops is not None and item.event.seq > summary.get("drops_seq", -1):
            summary["drops"] = {"counts": dict(drops.counts), "examples": list(drops.examples)}
            summary["drops_seq"] = item.event.seq
            summary["dropped"] = sum(n for kind, n in drops.counts.items() if kind not in SURVIVED_DROPS)


def judge(summary: dict[str, Any], state: TrendState, config: TrendConfig) -> None:
    """Best epoch and final loss from the fold state (only when epochs or the lifecycle moved). The trend
    verdict itself is judged from the stored state when it is read (`epochstream.readmodel.judged`)."""
    metric = state.monitored(config)
    mode = config.mode_of(metric)
    best = state.best(metric, mode)
    final = state.last_value("train/loss")
    summary.update(best_metric=metric, best_mode=mode, best_epoch=best.epoch if best else None,
                   best_value=best.value if best else None, last_epoch=state.last_epoch,
                   final_loss=json_safe_float(final[1]) if final and final[0] == state.last_epoch else None)


def _unless_unchanged(stored: StoredRun | None, raw: str, changed: bool, document: Any) -> str:
    """The stored JSON text again when nothing changed it (no re-encoding), else the new document."""
    if not changed and stored is not None and getattr(stored, raw) is not None:
        return getattr(stored, raw)
    return json_text(document)


def stale_after_us(summary: dict[str, Any]) -> int | None:
    seen = summary.get("last_seen_us")
    if seen is None:
        return None
    return seen + int(max(3 * (summary.get("heartbeat_s") or 0.0), STALE_FLOOR_S) * 1_000_000)


def plan_run(run: RunSlice, stored: StoredRun | None, lookup: Lookup, partition: int, now_text: str,
             writes: Writes) -> bool:
    """Add this run's writes to `writes`; False when the batch changes nothing of it (pure duplicates).
    `now_text`: when this batch is applied (ISO-8601), the run's `ingested_at`."""
    if run.empty() and not (stored is not None and stored.damaged):
        return False
    summary = dict(stored.summary) if stored is not None else new_summary(run.run_id)
    life = plan_lifecycle(run, stored, lookup, writes)
    config_text = None
    config = TrendConfig(*summary["trend_config"])
    starts = [a["seq"] for a in summary["attempts"]]
    moved = False  # what is monitored, or where attempts begin: either may change the visible history
    if life is not None:
        apply_lifecycle(summary, life)
        config_text = config_json(life.config)
        summary["lifecycle_events"] = life.events
        old_config, old_starts = config, starts
        config = TrendConfig(*summary["trend_config"])
        starts = [a["seq"] for a in summary["attempts"]]
        moved = config != old_config or starts != old_starts
    epochs = plan_epochs(run, stored, lookup, config, starts, moved, writes)
    steps: StepOutcome = plan_steps(run, stored, lookup, starts, writes)
    system_added = plan_system(run, writes)
    if life is None and not (epochs.changed or epochs.refolded or steps.changed or system_added):
        return False
    _touch(summary, run)
    _drops(summary, run)
    if epochs.changed or epochs.refolded or life is not None:
        judge(summary, epochs.state, config)
    summary.update(epochs=epochs.count, steps=steps.count, last_step=steps.last_step,
                   system_samples=summary["system_samples"] + system_added, ingested_at=now_text)
    summary["events"] = summary["epochs"] + summary["steps"] + summary["system_samples"] + summary["lifecycle_events"]
    versions = [stored.version, stored.epochs_version, stored.steps_version, stored.system_version] \
        if stored is not None else [0, 0, 0, 0]
    versions = [versions[0] + 1, versions[1] + epochs.changed, versions[2] + steps.changed,
                versions[3] + bool(system_added)]
    summary["version"] = versions[0]
    best = summary["best_value"]
    best_asc, best_desc = (math.inf, math.inf) if best is None else (best, -best)
    writes.add("runs_upsert", run.run_id, partition, summary["project"], summary["name"], summary["status"],
               summary.get("started_us") or summary["last_seen_us"] or 0, summary["last_seen_us"],
               stale_after_us(summary), best_asc, best_desc, summary["epochs"],
               summary["dropped"], *versions, json_text(summary), config_text,  # config None: unchanged
               _unless_unchanged(stored, "raw_state", epochs.changed or epochs.refolded, epochs.state.to_dict()),
               _unless_unchanged(stored, "raw_tail", steps.tail_document is not None, steps.tail_document))
    if life is not None:
        writes.add("tags_clear", run.run_id)
        writes.extend("tags_insert", [(tag, run.run_id) for tag in dict.fromkeys(life.tags)])
    return True
