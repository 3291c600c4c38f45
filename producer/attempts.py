"""Attempts of a run: which `seq` an attempt starts from, and the keys its delivery is deduplicated by.

A run may be started more than once: a preempted job restarting from its checkpoint calls
`start_run(run_id=same, resume=True)`. Every attempt's events must stay distinct (`event_id` is
`"{run_id}:{seq}"`, and the read model deduplicates by it) and the broker must never skip one attempt's
events because of another's.

- **Seq.** A first attempt counts from 1. A resumed attempt starts above both the run's seq mark in the
  broker (`Keys.run_seq`: the highest seq any attempt delivered) and a time floor, the microseconds since
  the Unix epoch (`seq_floor`). The floor alone is enough when the broker cannot be asked at resume time,
  or when the mark has expired: an attempt delivers less than one event per microsecond, so an attempt
  that starts later starts above everything an earlier one used, as long as the two hosts' clocks agree
  to within the time between them. Floors stay below 2**53 (the exact integers of Lua's doubles) until
  the year 2255.
- **Dedupe keys.** Each attempt has its own high-water mark, `Keys.attempt_seq(run_id, start)`; the
  delivery script skips a record at or below its attempt's mark, and raises the
  run's mark to the highest seq of all attempts. So a first attempt's events left in a spool are still
  delivered after a later attempt went ahead: they are below the run's mark but above their own.
- **Reuse.** Without `resume=True`, an explicitly given run id that already has a mark is refused: the
  run gets a fresh id (`fresh_id`) and a warning. When the broker cannot be asked, the run keeps its id
  and starts at the floor, so nothing can collide if the id did have events (they then show as an
  earlier attempt). A generated id (a uuid) needs no question.

Pure functions: `producer.run` asks the broker and the clock, and passes the answers in.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

MAX_RUN_ID = 128  # as in schemas.envelope.RUN_ID_PATTERN


def seq_floor(now_ns: int | None = None) -> int:
    """Microseconds since the Unix epoch: where a resumed attempt's seq may start at the earliest."""
    return (time.time_ns() if now_ns is None else now_ns) // 1000


def fresh_id(run_id: str, token: str | None = None) -> str:
    """A new run id that still reads like the refused one: `"{run_id}-{8 hex digits}"`."""
    token = token or uuid.uuid4().hex[:8]
    return f"{run_id[: MAX_RUN_ID - len(token) - 1]}-{token}"


@dataclass(frozen=True)
class Plan:
    """How an attempt begins: its run id, the seq before its first event, whether it resumes, what to say."""

    run_id: str
    seq_start: int
    resume: bool
    warning: str | None = None
    unchecked: bool = False  # an explicit id nobody could check: the publisher warns if it turns out reused


def plan_attempt(run_id: str, *, explicit: bool, resume: bool, mark: int | None, known: bool, floor: int,
                 spool_busy: bool = False, why_unknown: str = "") -> Plan:
    """The plan for starting `run_id`.

    `explicit`: the caller chose the id (else it is a fresh uuid: nothing to check). `mark`: the run's seq
    mark in the broker, None when it has none; only meaningful when `known` (the broker answered).
    `floor`: `seq_floor()`. `spool_busy`: this host's spool holds undelivered events (of any run), whose
    seqs the broker's mark cannot know about.
    """
    if resume:
        return Plan(run_id, max(mark or 0, floor) if known else floor, True)
    if not explicit:
        return Plan(run_id, 0, False)
    if not known:
        return Plan(run_id, floor, False, unchecked=True, warning=
                    f"could not check whether run {run_id} already has events ({why_unknown}); its seq starts at "
                    f"{floor + 1} so that, if it has, nothing collides and these events follow them as a later "
                    f"attempt (pass resume=True to continue a run on purpose)")
    if mark:
        new = fresh_id(run_id)
        return Plan(new, 0, False,
                    f"run {run_id} already has events (up to seq {mark}): reusing its id without resume=True "
                    f"would mix two runs, so this run is recorded as {new}. To continue {run_id} from a "
                    f"checkpoint, call start_run(run_id={run_id!r}, resume=True)")
    return Plan(run_id, floor if spool_busy else 0, False)
