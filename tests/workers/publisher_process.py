"""One training-like publisher process for the multi-process tests: `python publisher_process.py INDEX EPOCHS`.

Its values are a pure function of (index, epoch), so a test can recompute the best epoch by brute force.
"""

from __future__ import annotations

import random
import sys

from epochstream.settings import Settings
from producer import Publisher, start_run

SYSTEM_EVERY = 10


def val_loss(index: int, epoch: int) -> float:
    return 1.0 / (epoch + 1) + random.Random(index * 100_003 + epoch).uniform(0.0, 0.5)


def main(index: int, epochs: int) -> None:
    publisher = Publisher(Settings())
    with start_run(project="scale", name=f"p{index}", run_id=f"p{index}", publisher=publisher) as run:
        for epoch in range(epochs):
            run.log_epoch(epoch, {"train/loss": 2.0 / (epoch + 1), "val/loss": val_loss(index, epoch),
                                  "learning_rate": 0.01}, samples=256)
            if epoch % SYSTEM_EVERY == 0:
                run.log_system(cpu_percent=50.0, rss_mb=1000.0 + epoch)
    if not publisher.flush(60):
        sys.exit(3)
    publisher.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
