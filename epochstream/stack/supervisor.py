"""The supervisor: starts the stack's parts in order, restarts a worker or the scheduler that died, and
stops everything in order (scheduler, workers warm, a final burst drain, the API, the broker)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from epochstream.settings import Settings, settings_env
from epochstream.stack.broker import (
    BROKER_DIR,
    check_given_broker,
    masked,
    release_drain_locks,
    start_embedded_broker,
)
from epochstream.stack.children import CHILD_STOP_TIMEOUT_S, Child, cli_command
from epochstream.stack.errors import StackFailed
from epochstream.stack.ports import api_answers, pick_port, port_free
from epochstream.stack.state import own_data_dir, release_data_dir, write_state

LOGS_DIR = "logs"
FINAL_DRAIN_TIMEOUT_S = 120.0
API_START_TIMEOUT_S = 60.0
MAX_RESTARTS = 5  # restarts of one component within RESTART_WINDOW_S before the stack gives up
RESTART_WINDOW_S = 60.0


@dataclass
class Stack:
    """The local stack. `start()` then `wait()`/`stop()`; or use it as a context manager."""

    settings: Settings
    workers: int = 2
    scheduler_interval: float = 1.0
    say: Callable[[str], None] = print
    broker_url: str | None = None
    api_url: str | None = None
    children: list[Child] = field(default_factory=list)
    _server: Any = None
    _lock_fh: IO[str] | None = None
    _env: dict[str, str] = field(default_factory=dict)
    _restarts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def logs(self) -> Path:
        return self.data_dir / LOGS_DIR

    # -- start -------------------------------------------------------------------------------------------
    def start(self) -> Stack:
        self.settings = self.settings.model_copy(update={"data_dir": self.settings.data_dir.resolve()})
        self._lock_fh = own_data_dir(self.data_dir)
        try:
            self._check_api_port()
            self._start_broker()
            self._env = settings_env(self.settings.model_copy(update={"redis_url": self.broker_url}))
            self._start_api()
            for i in range(self.workers):
                self._spawn(f"worker-{i + 1}", cli_command("worker", "--no-scheduler"))
            self._spawn("scheduler", cli_command("scheduler", "--interval", str(self.scheduler_interval)))
            self._wait_api()
            self.say(f"workers    {self.workers} RQ worker processes (pids "
                     f"{', '.join(str(c.pid) for c in self.children if c.name.startswith('worker'))}), "
                     f"logs in {self.logs}")
            self.say(f"scheduler  queues a drain of each partition with new events every {self.scheduler_interval}s, "
                     f"log {self.logs / 'scheduler.log'}")
            self.say(f"api        {self.api_url}   web page {self.api_url}/   OpenAPI {self.api_url}/docs")
            self.say(f"data       {self.data_dir}   (SQL: epochstream sql \"SELECT * FROM runs\")")
            write_state(self.data_dir, api_url=self.api_url, broker_url=self.broker_url, workers=self.workers)
        except BaseException:
            self.stop(drain=False)
            raise
        return self

    def _check_api_port(self) -> None:
        host, port = self.settings.api_host, self.settings.api_port
        if port == 0:
            port = pick_port(host)
            self.settings = self.settings.model_copy(update={"api_port": port})
        elif not port_free(host, port):
            raise StackFailed(f"port {port} on {host} is in use: pass --port (or set EPOCHSTREAM_API_PORT)")
        # Bound to every interface: reach it (and tell people to) through loopback.
        connect = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
        self.api_url = f"http://{connect}:{port}"

    def _start_broker(self) -> None:
        if self.settings.redis_url:
            check_given_broker(self.settings, self.settings.redis_url, self.say)
            self.broker_url = self.settings.redis_url
            self.say(f"broker     {masked(self.broker_url)}   (EPOCHSTREAM_REDIS_URL)")
            return
        self._server = start_embedded_broker(self.settings, self.say)
        self.broker_url = self._server.url
        self.say(f"broker     {self.broker_url}   (embedded Valkey, append-only data in "
                 f"{self.data_dir / BROKER_DIR})")

    def _spawn(self, name: str, args: list[str]) -> Child:
        child = Child(name, args, self.logs / f"{name}.log").start(self._env)
        self.children.append(child)
        return child

    def _start_api(self) -> None:
        self._spawn("api", cli_command("api", "--host", self.settings.api_host,
                                       "--port", str(self.settings.api_port)))

    def _wait_api(self) -> None:
        api = self.child("api")
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not api.alive():
                raise StackFailed(f"the API exited at start: {api.log_tail()}")
            if api_answers(self.api_url, timeout=0.5):
                return
            time.sleep(0.1)
        raise StackFailed(f"the API did not answer on {self.api_url} within {API_START_TIMEOUT_S:.0f}s")

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    # -- run ---------------------------------------------------------------------------------------------
    def supervise(self) -> None:
        """Restart a worker or the scheduler that died; a dead API or broker ends the stack."""
        for i, c in enumerate(self.children):
            if c.alive():
                continue
            if c.name == "api":
                raise StackFailed(f"the API exited: {c.log_tail()}")
            now = time.monotonic()
            recent = [t for t in self._restarts.get(c.name, []) if now - t < RESTART_WINDOW_S] + [now]
            self._restarts[c.name] = recent
            if len(recent) > MAX_RESTARTS:
                raise StackFailed(f"{c.name} keeps exiting ({len(recent)} times in {RESTART_WINDOW_S:.0f}s): "
                                  f"{c.log_tail(300)}")
            self.say(f"{c.name} exited with {c.process.returncode}; restarting it (log: {c.log_path})")
            self.children[i] = Child(c.name, c.args, c.log_path).start(self._env)
        if self._server is not None and self._server.process.poll() is not None:
            raise StackFailed(f"the embedded broker exited; see {self._server.directory / 'server.log'}")

    def serve(self, on_ready: Callable[[], None] | None = None, poll_s: float = 0.5) -> None:
        """Start (unless started), then run until SIGINT/SIGTERM or a component fails; stop with a final drain.

        The signal handlers go in before anything starts: a Ctrl-C during start-up still stops cleanly.
        A second Ctrl-C stops at once, without the drain.
        """
        stopping: list[int] = []

        def handler(signum, _frame):
            if stopping:
                raise KeyboardInterrupt
            stopping.append(signum)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self._lock_fh is None:
                self.start()  # on failure it has already stopped what it started
        except BaseException:
            for s, h in previous.items():
                signal.signal(s, h)
            raise
        try:
            if on_ready is not None and not stopping:
                on_ready()
            while not stopping:
                self.supervise()
                time.sleep(poll_s)
            self.say("stopping: finishing in-flight drains, then a final drain of what is queued ...")
            self.stop(drain=True)
        except KeyboardInterrupt:
            self.say("stopping now without the final drain (events stay in the streams for the next start)")
            self.stop(drain=False, force=True)
        except BaseException:
            self.stop(drain=True)
            raise
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # -- stop --------------------------------------------------------------------------------------------
    def final_drain(self) -> bool:
        """One burst worker: drains every partition of what is still in the streams, then exits."""
        if not self.broker_url:
            return True
        if self._server is not None:
            release_drain_locks(self.settings, self.broker_url)
        drainer = Child("final-drain", cli_command("worker", "--burst"), self.logs / "final-drain.log")
        drainer.start(self._env)
        ok = drainer.wait(FINAL_DRAIN_TIMEOUT_S)
        if not ok:
            drainer.kill()
        return ok and drainer.process.returncode == 0

    def stop(self, drain: bool = True, force: bool = False) -> None:
        timeout = 2.0 if force else CHILD_STOP_TIMEOUT_S
        # The scheduler takes SIGINT (it leaves its loop between passes); RQ workers take SIGTERM as a warm
        # shutdown: each finishes the drain it is running, so nothing is left half-written.
        for name_prefix, sig in (("scheduler", signal.SIGINT), ("worker", signal.SIGTERM)):
            group = [c for c in self.children if c.name.startswith(name_prefix)]
            for c in group:  # signal all first so they wind down in parallel
                c.signal(sig)
            for c in group:
                if not c.wait(timeout):
                    c.kill()
        if drain and not force:
            if self.final_drain():
                self.say("drained: every event published so far is in the log")
            else:
                self.say(f"the final drain did not finish; see {self.logs / 'final-drain.log'} "
                         f"(undrained events stay in the broker and are drained at the next start)")
        for c in self.children:
            c.stop(timeout)
        if self._server is not None:
            self._server.stop()
            self._server = None
            if self._lock_fh is not None:  # only the owner of the data directory retracts the announcement
                from epochstream.broker import discovery_path

                discovery_path(self.settings).unlink(missing_ok=True)
        if self._lock_fh is not None:
            release_data_dir(self.data_dir, self._lock_fh)
            self._lock_fh = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(drain=exc[0] is None)
