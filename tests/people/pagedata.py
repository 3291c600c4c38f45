"""Runs for the web page tests, written straight into the read model by the drain's own writer.

The page only reads the API, and the API only reads the read model: writing events with
`ReadModelWriter.apply` (what a drain does after validation) builds thousands of runs in seconds, where the
producer -> Redis -> drain path would take minutes. One test in test_browser.py still goes through the whole
pipeline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from epochstream.readmodel import ReadModelWriter
from epochstream.settings import Settings
from schemas.epoch import EpochV2
from schemas.keys import partition_of
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from schemas.step import StepV1
from schemas.system import GpuSample, SystemV2

TRACEBACK = "Traceback (most recent call last):\n" + "".join(
    f'  File "/srv/train/layer_{i}.py", line {10 + i}, in forward_{i}\n    x = self.block_{i}(x)\n'
    for i in range(40)) + ('  File "/srv/train/kernels.py", line 99, in innermost_frame\n'
                           "    torch.cuda.synchronize()\n"
                           "RuntimeError: CUDA error: an illegal memory access was encountered")


def healthy(n: int, scale: float = 1.0) -> list[dict[str, float]]:
    """Every kind of metric a trainer logs: losses, accuracy, perplexity, a schedule, a custom one."""
    out = []
    for e in range(n):
        val = scale * (1.2 / (e + 1) + 0.3)
        out.append({"train/loss": scale * 2.0 / (e + 1), "val/loss": val,
                    "val/accuracy": 0.5 + 0.4 * e / max(n, 1) / scale, "val/perplexity": math.exp(val),
                    "learning_rate": 0.1 * 0.5 ** e, "gradient_norm": 1.0 + e % 3, "custom_metric": float(e * e)})
    return out


def overfitting(n: int) -> list[dict[str, float]]:
    """Training keeps improving while validation turns up after the first third (but stays under 2x its best)."""
    rise = [0.03 * max(0, e - n // 3) for e in range(n)]
    return [{"train/loss": 2.0 / (e + 1), "val/loss": 0.5 + 1.0 / (e + 1) + rise[e]} for e in range(n)]


def diverging(n: int) -> list[dict[str, float]]:
    return [{"train/loss": 1.0 * 3 ** e if e < n - 1 else math.inf,
             "val/loss": 1.2 * 3 ** e if e < n - 1 else math.nan} for e in range(n)]


class PageData:
    """Collects runs, then writes them in a few batches (`write`)."""

    def __init__(self, settings: Settings, now: datetime | None = None):
        self.settings = settings
        self.now = now or datetime.now(UTC)
        self.events: list[Any] = []
        self._ids = iter(range(1, 10**12))  # stream ids only grow: a later write is never taken for a redelivery
        self._seq: dict[str, int] = {}
        self._t0: dict[str, datetime] = {}

    def _env(self, run_id: str, offset_s: float) -> dict[str, Any]:
        seq = self._seq[run_id] = self._seq.get(run_id, 0) + 1
        return {"event_id": f"{run_id}:{seq}", "run_id": run_id, "seq": seq,
                "ts": self._t0[run_id] + timedelta(seconds=offset_s), "host": "test-host", "pid": 1}

    def run(self, run_id: str, *, project: str = "web", name: str | None = None,
            config: Mapping[str, Any] | None = None, tags: Sequence[str] = (),
            epochs: Sequence[Mapping[str, float]] = (), steps: Iterable[tuple[int, Mapping[str, float]]] = (),
            system: int = 0, gpus: int = 0, finish: str | None = "completed", error: str | None = None,
            traceback: str | None = None, start: datetime | None = None, heartbeat_s: float | None = None) -> str:
        self._t0[run_id] = start or self.now - timedelta(minutes=10)

        def env(offset_s: float) -> dict[str, Any]:
            return self._env(run_id, offset_s)

        self.events.append(RunStartedV2(**env(0), project=project, name=name or run_id, config=dict(config or {}),
                                        tags=list(tags), heartbeat_s=heartbeat_s))
        for e, metrics in enumerate(epochs):
            self.events.append(EpochV2(**env(1 + e), epoch=e, samples=100, metrics=dict(metrics)))
        for step, metrics in steps:
            self.events.append(StepV1(**env(0.5 + step * 1e-4), step=step, metrics=dict(metrics)))
        for i in range(system):
            self.events.append(SystemV2(**env(1 + i), cpu_percent=20.0 + 5 * (i % 4), rss_mb=500.0 + 10 * i,
                                        gpus=[GpuSample(index=g, name="H100", mem_allocated_mb=1000.0 + 100 * i,
                                                        mem_total_mb=81559.0, utilization_pct=40.0 + 5 * (i % 8))
                                              for g in range(gpus)]))
        if finish is not None:
            self.events.append(RunFinishedV2(**env(2 + len(epochs)), status=finish, error=error, traceback=traceback,
                                             exit_code=0 if finish == "completed" else 1,
                                             duration_s=float(2 + len(epochs))))
        return run_id

    def more_epochs(self, run_id: str, first: int, epochs: Sequence[Mapping[str, float]]) -> None:
        """Later epochs of a run already written (a training that goes on)."""
        for e, metrics in enumerate(epochs, start=first):
            self.events.append(EpochV2(**self._env(run_id, 1 + e), epoch=e, samples=100, metrics=dict(metrics)))

    def write(self, batch: int = 5000) -> None:
        writer = ReadModelWriter.open(self.settings.data_dir)
        try:
            for lo in range(0, len(self.events), batch):
                by_partition: dict[int, list] = {}
                for ev in self.events[lo:lo + batch]:
                    by_partition.setdefault(partition_of(ev.run_id, self.settings.partitions), []).append(
                        (f"{next(self._ids)}-0", ev, self.now))
                for partition, entries in by_partition.items():
                    writer.apply(partition, entries, 0, self.now)
        finally:
            writer.close()
        self.events = []


def noisy_steps(n: int, seed: int, scale: float = 1.0, every: int = 1) -> list[tuple[int, dict[str, float]]]:
    """A training loss logged every `every` steps, noisy as real ones are (what smoothing is for)."""
    rng = random.Random(seed)
    return [(s, {"train/loss": scale * 3.0 / math.sqrt(1 + s / 50) + rng.gauss(0, 0.15), "learning_rate": 0.01})
            for s in range(0, n * every, every)]
