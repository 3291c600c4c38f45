"""One paced training-like publisher for the cluster tests: `python publisher.py INDEX EPOCHS PAUSE_S`.

Paced (`PAUSE_S` between epochs) so that a master stopped mid-run meets publishers still publishing.
"""

from __future__ import annotations

import sys
import time

from epochstream.settings import Settings
from producer import Publisher, start_run


def main(index: int, epochs: int, pause_s: float) -> None:
    publisher = Publisher(Settings())
    with start_run(project="cluster", name=f"c{index}", run_id=f"c{index}", publisher=publisher) as run:
        for epoch in range(epochs):
            run.log_epoch(epoch, {"train/loss": 2.0 / (epoch + 1), "val/loss": 1.0 / (epoch + 1) + index},
                          samples=64)
            time.sleep(pause_s)
    if not publisher.flush(90):
        sys.exit(3)
    publisher.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
