"""The stack's child processes: how each is started (own session, parent-death signal), stopped and logged."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHILD_STOP_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1


def cli_command(*args: str) -> list[str]:
    """`epochstream ARGS` run by this interpreter (the console script next to it, when installed)."""
    script = Path(sys.executable).with_name("epochstream")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from epochstream.cli import main; main()", *args]


def _child_setup() -> None:
    """Runs in each child between fork and exec.

    A shell that started `up` in the background ignores SIGINT, and children inherit that: the scheduler
    must see SIGINT to leave its loop cleanly. And on Linux, a child gets SIGTERM if the supervisor dies
    without stopping it (kill -9), instead of living on as an orphan holding the API port.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(AttributeError, OSError):  # not Linux: no such call; orphans are then possible
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The child keeps its own copy of the log descriptor; ours can close at once.
        with open(self.log_path, "ab") as log:
            # Own session: the terminal's Ctrl-C goes to the supervisor only, which stops us in order.
            self.process = subprocess.Popen(self.args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_child_setup)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout: float = CHILD_STOP_TIMEOUT_S) -> None:
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.kill()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""
