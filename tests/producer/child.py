"""Training processes for the multi-process tests: `python -m tests.producer.child MODE RUN_ID`.

Settings come from EPOCHSTREAM_* variables, as in a real training job. Each mode prints one line per
milestone (flushed), which the parent test waits for.
"""

from __future__ import annotations

import signal
import sys
import time

from producer import Publisher, start_run

LONG_ERROR = "the data loader found a corrupt shard: " + "".join(f"[{i:03d}:ÿ✓]" for i in range(40)) + " END"


def say(text: str) -> None:
    print(text, flush=True)


def spool_forever(run_id: str) -> None:
    """No broker answers: every epoch goes to the spool. Reports each epoch known to be on disk."""
    with start_run("kill-test", run_id=run_id) as run:
        epoch = 0
        while True:
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=32)
            if epoch % 10 == 9:
                run.flush(1.0)  # returns after the failed attempt: everything so far is in the spool
                say(f"spooled {epoch}")
            epoch += 1
            time.sleep(0.001)


TRAIN_EPOCHS = 50


def train_and_exit(run_id: str) -> None:
    """A whole training (its run id generated when given "-"), then the process exits, as scripts do."""
    with start_run("spool-test", run_id=None if run_id == "-" else run_id) as run:
        for epoch in range(TRAIN_EPOCHS):
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=32)
    say(f"run {run.run_id}")


def deliver(_run_id: str) -> None:
    """A new process on the same spool directory: delivers what dead ones left there."""
    from epochstream.settings import Settings

    publisher = Publisher(Settings())
    say(f"delivered {publisher.flush(30)}")
    publisher.close()


def wait_for_sigterm(run_id: str) -> None:
    with start_run("sigterm-test", run_id=run_id) as run:
        for epoch in range(100_000):
            run.log_epoch(epoch, {"train/loss": 1.0})
            if epoch == 2:
                run.flush(5)
                say("training")
            time.sleep(0.01)


def chained_sigterm(run_id: str) -> None:
    """The training code has its own SIGTERM handler (a framework's): ours must call it."""

    def on_term(signum, frame):
        say("own handler ran")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    wait_for_sigterm(run_id)


def fail(run_id: str) -> None:
    def load_shard():
        raise ValueError(LONG_ERROR)

    with start_run("fail-test", run_id=run_id) as run:
        run.log_epoch(0, {"train/loss": 1.0})
        load_shard()


def fail_without_with(run_id: str) -> None:
    """No context manager: the uncaught exception is still reported when the process exits."""
    run = start_run("fail-test", run_id=run_id)
    run.log_epoch(0, {"train/loss": 1.0})
    raise RuntimeError(LONG_ERROR)


MODES = {"spool": spool_forever, "train": train_and_exit, "deliver": deliver, "sigterm": wait_for_sigterm,
         "chained": chained_sigterm, "fail": fail, "fail-bare": fail_without_with}

if __name__ == "__main__":
    MODES[sys.argv[1]](sys.argv[2])
