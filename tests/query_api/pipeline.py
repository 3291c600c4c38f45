"""Test data through the real pipeline: producer -> Redis stream -> drain -> projections."""

from __future__ import annotations

from collections.abc import Sequence

from producer import Publisher, start_run
from producer.run import Run


def publish_epochs(run: Run, epochs: Sequence[dict[str, float]], start: int = 0) -> None:
    for i, metrics in enumerate(epochs):
        run.log_epoch(start + i, metrics, samples=100)


def make_run(publisher: Publisher, project: str, epochs: Sequence[dict[str, float]], *, name: str | None = None,
             finish: str | None = "completed", error: str | None = None, system: int = 0) -> Run:
    run = start_run(project=project, name=name, config={"lr": 0.1, "layers": 3}, publisher=publisher)
    publish_epochs(run, epochs)
    for i in range(system):
        run.log_system(cpu_percent=10.0 + i, rss_mb=100.0 + (i % 7))
    if finish == "failed":
        run.finish("failed", error=error, traceback="Traceback (most recent call last):\n  ...", exit_code=1)
    elif finish is not None:
        run.finish(finish, exit_code=0)
    assert publisher.flush(10)
    return run


def losses(n: int) -> list[dict[str, float]]:
    return [{"train/loss": 2.0 / (e + 1), "val/loss": 1.5 / (e + 1) + (0.02 * e if e > n // 2 else 0.0)}
            for e in range(n)]
