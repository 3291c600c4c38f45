"""The local all-in-one stack behind `epochstream up` and `epochstream demo`.

One process (the supervisor) owns: the embedded broker (only when no EPOCHSTREAM_REDIS_URL is set; its
append-only data under <data_dir>/broker so a restart loses nothing), N RQ worker processes, the drain
scheduler and the API. Children run in their own sessions so a Ctrl-C in the terminal reaches only the
supervisor, which then shuts them down in order: scheduler, workers (warm: they finish their job), a final
burst drain of what is still in the streams, the API, the broker.

A second stack on the same data directory is refused by an exclusive `flock` on <data_dir>/stack.lock,
which the kernel releases when the holder dies (no stale pid files to clean up by hand).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from epochstream.errors import BrokerUnavailable, ConfigurationError, TerminalError
from epochstream.settings import Settings

LOCK_FILE = "stack.lock"
STATE_FILE = "stack.json"
BROKER_DIR = "broker"
LOGS_DIR = "logs"
CHILD_STOP_TIMEOUT_S = 30.0
FINAL_DRAIN_TIMEOUT_S = 120.0
API_START_TIMEOUT_S = 60.0
MAX_RESTARTS = 5  # restarts of one component within RESTART_WINDOW_S before the stack gives up
RESTART_WINDOW_S = 60.0
PR_SET_PDEATHSIG = 1


class StackAlreadyRunning(TerminalError):
    """Another `epochstream up` owns this data directory."""


class StackFailed(TerminalError):
    """A component of the stack could not start."""


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that hands `settings` to a child process: every field that has a value."""
    env = dict(os.environ if base is None else base)
    for name, value in settings:
        key = f"EPOCHSTREAM_{name.upper()}"
        if value is None:
            env.pop(key, None)
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = value.resolve()
        env[key] = str(value)
    return env


def cli_command(*args: str) -> list[str]:
    """`epochstream ARGS` run by this interpreter (the console script next to it, when installed)."""
    script = Path(sys.executable).with_name("epochstream")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from epochstream.cli import main; main()", *args]


def _bound(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (IPv4 or IPv6, as the host resolves), as a server would bind it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on host {host!r}: {exc.strerror}; pass --host (or set "
                                 f"EPOCHSTREAM_API_HOST) to an address of this machine") from None
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
    except OSError:
        s.close()
        raise
    return s


def port_free(host: str, port: int) -> bool:
    try:
        _bound(host, port).close()
    except OSError:  # in use, or not an address of this machine
        return False
    return True


def pick_port(host: str) -> int:
    with _bound(host, 0) as s:
        return s.getsockname()[1]


def api_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """What a running stack on this data directory announced (pid, API and broker URLs), or None."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def running_stack(data_dir: Path) -> dict[str, Any] | None:
    """The state of the stack that holds this data directory's lock now, or None when none does."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_state(data_dir) or {"pid": None}
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def _child_setup() -> None:
    """Runs in each child between fork and exec.

    A shell that started `up` in the background ignores SIGINT, and children inherit that: the scheduler
    must see SIGINT to leave its loop cleanly. And on Linux, a child gets SIGTERM if the supervisor dies
    without stopping it (kill -9), instead of living on as an orphan holding the API port.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(AttributeError, OSError):  # not Linux: no such call; orphans are then possible
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def masked(url: str) -> str:
    """A Redis URL fit to print: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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
        self._lock()
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
            self._write_state()
        except BaseException:
            self.stop(drain=False)
            raise
        return self

    def _lock(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fh = open(self.data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held (and locked) for the stack's life
        except OSError as exc:
            raise StackFailed(f"cannot use {self.data_dir} as the data directory: {exc.strerror or exc}; "
                              f"pass --data-dir (or set EPOCHSTREAM_DATA_DIR) to a writable directory") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            state = read_state(self.data_dir) or {}
            where = f" (pid {state.get('pid')}, API {state.get('api_url')})" if state else ""
            raise StackAlreadyRunning(
                f"an epochstream stack is already running on {self.data_dir}{where}: use it, or stop it with "
                f"Ctrl-C in its terminal before starting another"
            ) from None
        self._lock_fh = fh

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
        from epochstream.broker import ServerProcess, announce, answers, resolve_queue_url

        if self.settings.redis_url:
            resolve_queue_url(self.settings)  # a cluster needs EPOCHSTREAM_QUEUE_URL: say so before starting anything
            if not answers(self.settings.redis_url, timeout=2.0):
                raise BrokerUnavailable(f"Redis at {self.settings.redis_url} does not answer: start it, or unset "
                                        f"EPOCHSTREAM_REDIS_URL to use the embedded broker")
            self.broker_url = self.settings.redis_url
            self.say(f"broker     {masked(self.broker_url)}   (EPOCHSTREAM_REDIS_URL)")
            return
        directory = self.data_dir / BROKER_DIR
        self._stop_orphaned_broker()
        self._server = ServerProcess(directory=directory, persistent=True).start()
        self.broker_url = self._server.url
        announce(self.settings, self.broker_url)
        self.say(f"broker     {self.broker_url}   (embedded Valkey, append-only data in {directory})")

    def _stop_orphaned_broker(self) -> None:
        """A broker announced here while we hold the lock was left by an `up` that was killed: its files
        are ours now. Two servers must never write one append-only file, so shut it down (it saves) first."""
        import redis

        from epochstream.broker import announced_url, answers

        url = announced_url(self.settings)
        if url is None:
            return
        try:
            redis.Redis.from_url(url, socket_timeout=10).shutdown()
        except redis.ConnectionError:
            pass  # it closes the connection as it exits: the expected answer
        except redis.RedisError as exc:
            raise StackFailed(f"a broker left by an earlier `up` still runs at {url} and did not stop: {exc}; "
                              f"stop it, then start again") from None
        deadline = time.monotonic() + 10
        while answers(url, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.say(f"stopped the broker an earlier, killed `up` left running at {url}")

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

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "api_url": self.api_url, "broker_url": self.broker_url,
                 "workers": self.workers, "started_at": time.time()}
        tmp = self.data_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state))
        tmp.chmod(0o600)  # broker_url may be EPOCHSTREAM_REDIS_URL with its password: for this user only
        tmp.replace(self.data_dir / STATE_FILE)

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
            self._release_drain_locks()
        drainer = Child("final-drain", cli_command("worker", "--burst"), self.logs / "final-drain.log")
        drainer.start(self._env)
        ok = drainer.wait(FINAL_DRAIN_TIMEOUT_S)
        if not ok:
            drainer.kill()
        return ok and drainer.process.returncode == 0

    def _release_drain_locks(self) -> None:
        """Our own broker, every worker stopped: a lock left by a process killed between taking it and
        queueing its job would hold its partition back from the final drain until the lock's TTL ends."""
        from epochstream.broker import connect
        from schemas.keys import Keys
        from workers.locks import release_all

        keys = Keys(self.settings.namespace, self.settings.partitions)
        client = connect(self.broker_url)
        try:
            release_all(client, [keys.drain_lock(p) for p in range(self.settings.partitions)])
        finally:
            client.close()

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
        state = self.data_dir / STATE_FILE
        if self._lock_fh is not None:
            state.unlink(missing_ok=True)
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(drain=exc[0] is None)
