"""Helpers for the worker tests: publish real events with the real producer, drain, read back."""

from __future__ import annotations

from epochstream.settings import Settings
from producer import Publisher, start_run


def publish_runs(settings: Settings, runs: int, epochs: int, system_every: int = 0, prefix: str = "r") -> list[str]:
    publisher = Publisher(settings)
    ids = []
    for r in range(runs):
        with start_run(project="t", name=f"{prefix}{r}", run_id=f"{prefix}{r}", publisher=publisher) as run:
            for e in range(epochs):
                run.log_epoch(e, {"train/loss": 1.0 / (e + 1), "val/loss": abs(e - epochs / 2) + r}, samples=10)
                if system_every and e % system_every == 0:
                    run.log_system(cpu_percent=float(e), rss_mb=100.0)
        ids.append(run.run_id)
    assert publisher.flush(30)
    publisher.close()
    return ids
