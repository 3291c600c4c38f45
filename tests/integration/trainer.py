"""A training job for the end-to-end tests, run as a real process:

    python -m tests.integration.trainer RUN_ID CHECKPOINT_FILE [DIE_AT]

It trains 50 epochs under `RUN_ID`, writing a checkpoint (the last finished epoch) every 5 epochs, and
starts with `resume=True` from the checkpoint when there is one, as a preemptible job does. Every epoch
logs `attempt` (1 for the first start, 2 for the next) so the test can tell whose epochs it sees. With
DIE_AT it says "at DIE_AT" once that epoch is delivered and waits there to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from producer import start_run

EPOCHS = 50
EVERY = 5


def main(run_id: str, checkpoint: Path, die_at: int | None) -> None:
    saved = json.loads(checkpoint.read_text()) if checkpoint.exists() else None
    first = 0 if saved is None else saved["epoch"] + 1
    attempt = 1 if saved is None else saved["attempt"] + 1
    with start_run("preemptible", run_id=run_id, resume=saved is not None) as run:
        for epoch in range(first, EPOCHS):
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1) + attempt / 1000, "attempt": float(attempt)},
                          samples=32)
            if epoch == die_at:  # preempted after logging the epoch, before its checkpoint
                run.flush(10)
                print(f"at {epoch}", flush=True)
                time.sleep(3600)
            if epoch % EVERY == 0:
                checkpoint.write_text(json.dumps({"epoch": epoch, "attempt": attempt}))
    print(f"run {run.run_id}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
