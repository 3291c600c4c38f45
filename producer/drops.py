"""What a run could not publish as given: counted per kind, a few examples in words, reported with the run.

Nothing a training logged disappears unseen. Each problem is counted in the run's `DropLedger`, logged
the first time its kind occurs in the run, summarised when the run finishes, and published as the
cumulative `DropReport` in the run's heartbeats (`system.drops`, when it changed) and in `run_finished`.

Kinds (one count is a value, unless it says an event or a field):
- `renamed`: a metric name outside the contract's pattern was kept under its sanitised form
  (`acc@1` -> `acc_1`, see `producer.drafts.sanitised`); nothing is lost.
- `invalid_name`: a name that cannot be made valid (not a string, empty, or its sanitised form is already
  logged in the same event): that value is dropped.
- `missing`: the value was None (a metric not computed this time).
- `not_a_number`: a string, bytes, a vector, anything `float()` refuses.
- `too_many`: past 512 metrics in one event; the first 512 are kept.
- `invalid_field` (a field): `samples`, or a step's `epoch`, is not a whole number >= 0: the event is sent
  without it.
- `invalid_event` (an event): it cannot be built at all: an epoch or step number that is not a whole
  number >= 0, metrics that are not a mapping, a system sample or config the contract refuses.
- `queue_full` (an event): the publish queue was full (the broker and the spool slower than training).
- `spool_full` (an event): the spool reached `EPOCHSTREAM_SPOOL_MAX_BYTES` while the broker was away.
- `spool_error` (an event): the disk refused a spool write.
- `rejected` (an event): the broker's reply proves it can never be accepted (`WRONGTYPE`).
- `encode` (an event): it could not be encoded.
- `closed` (an event): published after its publisher was closed.
- `after_finish` (an event): logged after `run_finished`; counted and logged here only, since the run's
  report has gone with `run_finished`.

Every kind but `renamed` is a loss; `dropped` is their sum (what the API's `dropped` shows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from producer.notices import Notices
from schemas.drops import MAX_EXAMPLES, DropReport

KEPT = frozenset({"renamed"})  # counted, but the value was kept
EXAMPLES_PER_KIND = 3  # so one noisy kind cannot crowd the others out of the report's 20 examples
MAX_EXAMPLE_CHARS = 500


def clip(text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DropLedger:
    """One run's drops. Thread-safe: the training thread and the publisher thread both add to it.

    `version` moves on every change, so a heartbeat carries the report only when there is news
    (`pending` then `sent`).
    """

    def __init__(self, run_id: str, notices: Notices | None = None):
        self.run_id = run_id
        self.notices = notices if notices is not None else Notices()
        self.counts: dict[str, int] = {}
        self.version = 0
        self._examples: list[str] = []
        self._example_keys: set[tuple[str, Hashable]] = set()
        self._per_kind: dict[str, int] = {}
        self._sent_version = 0
        self._lock = threading.Lock()

    def add(self, kind: str, count: int = 1, key: Hashable = None,
            example: str | Callable[[], str] | None = None, quiet: bool = False) -> None:
        """Count `count` drops of `kind`. `example` (text, or a function making it: only called when it is
        kept) describes it; one example per distinct `key` of a kind, at most a few per kind. The first drop
        of each kind in the run is logged (unless `quiet`: the caller says it itself)."""
        if count <= 0:
            return
        with self._lock:
            first = kind not in self.counts
            self.counts[kind] = self.counts.get(kind, 0) + count
            self.version += 1
            text = None
            if example is not None and (kind, key) not in self._example_keys \
                    and self._per_kind.get(kind, 0) < EXAMPLES_PER_KIND and len(self._examples) < MAX_EXAMPLES:
                text = clip(example() if callable(example) else example)
                self._example_keys.add((kind, key))
                self._per_kind[kind] = self._per_kind.get(kind, 0) + 1
                self._examples.append(text)
        if first and not quiet:
            what = text or kind
            self.notices.warn(f"drop-{kind}", f"run {self.run_id}: {what} (further '{kind}' cases are counted, not "
                                              "logged: summarised when the run ends, and in the run's `drops`)")

    @property
    def dropped(self) -> int:
        """Values and events lost (every kind but `renamed`)."""
        return sum(n for kind, n in self.counts.items() if kind not in KEPT)

    @property
    def examples(self) -> list[str]:
        with self._lock:
            return list(self._examples)

    def report(self) -> DropReport | None:
        """The cumulative report, or None when nothing was ever dropped or renamed."""
        with self._lock:
            if not self.counts:
                return None
            return DropReport(counts=dict(self.counts), examples=list(self._examples))

    def pending(self) -> tuple[int, DropReport | None]:
        """(version, report) if anything changed since the last `sent`, else (version, None)."""
        with self._lock:
            version = self.version
            changed = version != self._sent_version
        return version, (self.report() if changed else None)

    def sent(self, version: int) -> None:
        with self._lock:
            self._sent_version = max(self._sent_version, version)

    def summary(self) -> str | None:
        """One line for the end of the run, or None when there is nothing to say."""
        report = self.report()
        if report is None:
            return None
        lost, kept = self.dropped, sum(report.counts.get(k, 0) for k in KEPT)
        by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(report.counts.items()))
        examples = "; ".join(report.examples[:5])
        return (f"run {self.run_id}: {lost} dropped, {kept} renamed ({by_kind})"
                f"{': ' + examples if examples else ''} (all of it in the run's `drops`)")
