"""A run's lifecycle, judged from its `run_started`, `run_config` and `run_finished` events. Pure.

A function of the *set* of those events (they are sorted by seq first), so any arrival order, any
redelivery and a rebuild all give the same answer:
- status: that of the highest-seq `run_started` / `run_finished`: a resumed attempt makes a finished run
  `running` again; two `run_finished` disagreeing are settled by seq, never by arrival;
- attempts: one per `run_started`, each with how it ended (the `run_finished` inside its seq range);
- config: every `run_started` and `run_config` config merged key by key in seq order (later wins), so
  hyper-parameters a framework reports late are all there;
- who and what (project, name, tags, host, heartbeat, what to monitor): the newest `run_started`;
  started_at: the first one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.trend_rules import TrendConfig


@dataclass(frozen=True)
class LifecycleEvent:
    type: str  # run_started | run_config | run_finished
    seq: int
    event_id: str
    ts: datetime
    body: Mapping[str, Any]  # the event's own fields (config parsed)


@dataclass
class Attempt:
    attempt: int
    seq: int
    started_at: datetime
    host: str | None
    pid: int | None
    resume: bool
    status: str | None = None  # how it ended; None: no run_finished (still running, or died silently)
    finished_at: datetime | None = None
    exit_code: int | None = None

    def public(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "seq": self.seq, "started_at": self.started_at.isoformat(),
                "host": self.host, "pid": self.pid, "resume": self.resume, "status": self.status,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "exit_code": self.exit_code}


@dataclass
class Lifecycle:
    status: str = "running"
    project: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    heartbeat_s: float | None = None
    started_at: datetime | None = None
    config: dict[str, Any] = field(default_factory=dict)
    trend_config: TrendConfig = field(default_factory=TrendConfig)
    error: str | None = None
    traceback: str | None = None
    exit_code: int | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    events: int = 0  # distinct lifecycle events

    @property
    def attempt_starts(self) -> list[int]:
        """The seq of each attempt's `run_started`, ascending: the boundaries between attempts."""
        return [a.seq for a in self.attempts]


def summarise(events: Iterable[LifecycleEvent]) -> Lifecycle:
    out = Lifecycle()
    ordered = sorted({e.event_id: e for e in events}.values(), key=lambda e: (e.seq, e.event_id))
    out.events = len(ordered)
    last_kind = None
    for event in ordered:
        body = event.body
        if event.type == "run_started":
            _merge_config(out.config, body.get("config"))
            out.project, out.name = body.get("project"), body.get("name")
            out.tags = list(body.get("tags") or [])
            out.host, out.heartbeat_s = body.get("host"), body.get("heartbeat_s")
            out.started_at = out.started_at or event.ts
            out.trend_config = TrendConfig(monitor=body.get("monitor"), mode=body.get("mode"),
                                           patience=body.get("patience"), min_delta=body.get("min_delta"))
            out.attempts.append(Attempt(len(out.attempts) + 1, event.seq, event.ts, body.get("host"),
                                        body.get("pid"), bool(body.get("resume"))))
            last_kind = event
        elif event.type == "run_config":
            _merge_config(out.config, body.get("config"))
        elif event.type == "run_finished":
            if out.attempts:
                attempt = out.attempts[-1]
                attempt.status, attempt.finished_at, attempt.exit_code = (body.get("status"), event.ts,
                                                                          body.get("exit_code"))
            last_kind = event
    if last_kind is not None and last_kind.type == "run_finished":
        body = last_kind.body
        out.status = body.get("status") or "running"
        out.error, out.traceback, out.exit_code = body.get("error"), body.get("traceback"), body.get("exit_code")
        out.finished_at, out.duration_s = last_kind.ts, body.get("duration_s")
    return out


def _merge_config(config: dict[str, Any], update: Any) -> None:
    if isinstance(update, Mapping):
        config.update(update)
