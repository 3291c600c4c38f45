"""`epochstream demo`: four real PyTorch trainings at once through the whole pipeline, shown live.

It uses the stack already running on the data directory, or starts one (and stops it, drained, at the
end). The trainings run as subprocesses (`python -m epochstream.demo.train KIND`); their progress is read
back through the API, exactly as a dashboard would see it.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from epochstream.cli import app
from epochstream.cli.client import fail, user_errors
from epochstream.cli.common import build_settings
from epochstream.cli.render import (
    TERMINAL,
    flags_text,
    fmt,
    metric_series,
    recommendation_text,
    short_id,
    sparkline,
    summary_value,
)
from epochstream.demo import KINDS

if TYPE_CHECKING:
    from epochstream.cli.api_client import ApiClient

SETTLE_TIMEOUT_S = 60.0  # after the trainings exit, how long to wait for their last events to be drained


@dataclass
class Training:
    kind: str
    process: subprocess.Popen
    log_path: Path
    run_id: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)

    def read_run_id(self) -> None:
        """The training prints `run_id <id>` first; everything else it prints goes to its log."""
        assert self.process.stdout is not None
        with open(self.log_path, "a") as log:
            for line in self.process.stdout:
                if self.run_id is None and line.startswith("run_id "):
                    self.run_id = line.split()[1]
                log.write(line)

    @property
    def done(self) -> bool:
        return self.summary.get("status") in TERMINAL


def launch(kind: str, env: dict[str, str], logs: Path, epochs: int | None, epoch_delay: float) -> Training:
    args = [sys.executable, "-m", "epochstream.demo.train", kind, "--epoch-delay", str(epoch_delay),
            "--name", f"demo-{kind}"]
    if epochs:
        args += ["--epochs", str(epochs)]
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"demo-{kind}.log"
    log_path.write_text("")
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    training = Training(kind, process, log_path)
    threading.Thread(target=training.read_run_id, daemon=True).start()
    return training


def poll(client: ApiClient, t: Training) -> None:
    if t.run_id is None:
        return
    from epochstream.cli.api_client import UnknownRun

    try:
        t.summary = client.get(f"/runs/{t.run_id}")
        t.epochs = client.epochs(t.run_id)
    except UnknownRun:  # its first events are not drained yet
        pass


def progress_table(trainings: list[Training]):
    from rich.table import Table

    table = Table(title="epochstream demo: 4 PyTorch trainings, read back through the API", header_style="bold")
    for name in ("run", "status", "epoch", "train/loss", "val/loss", "val/loss curve", "flags"):
        table.add_column(name)
    for t in trainings:
        status = t.summary.get("status") or ("starting" if t.process.poll() is None else "exited")
        val = metric_series(t.epochs, "val/loss")
        train = metric_series(t.epochs, "train/loss")
        table.add_row(f"demo-{t.kind}", status, fmt(t.epochs[-1]["epoch"] if t.epochs else None),
                      fmt(train[-1] if train else None), fmt(val[-1] if val else None), sparkline(val, 24),
                      flags_text(t.summary.get("trends")))
    return table


def summary_table(trainings: list[Training]):
    from rich.table import Table

    table = Table(title="summary", header_style="bold", show_lines=True)
    for name in ("run", "run id", "status", "best epoch", "best value", "flags", "recommendation"):
        table.add_column(name, overflow="fold")
    for t in trainings:
        s = t.summary
        status = s.get("status") or f"no events (exit {t.process.returncode}; log {t.log_path})"
        color = {"completed": "green", "failed": "red"}.get(str(s.get("status")), "yellow")
        best = f"{fmt(summary_value(s, 'best_value'))} {s.get('best_metric') or ''}".strip()
        table.add_row(f"demo-{t.kind}", short_id(t.run_id or "-"), f"[{color}]{status}[/]", fmt(s.get("best_epoch")),
                      best, flags_text(s.get("trends")), recommendation_text(s.get("trends")))
    return table


def next_steps(trainings: list[Training], api_url: str, data_dir: Path, stack_running: bool, flags: str = "",
               up_flags: str = ""):
    """What to do next, as a two-column grid: a command, and what it shows. `flags` (`--data-dir X`) go on
    every `epochstream` command so it finds the same data; `up_flags` on `up` alone."""
    from rich.table import Table

    ids = {t.kind: t.run_id or "RUN" for t in trainings}
    where = "" if stack_running else f" (the demo stopped its stack; the data stays in {data_dir})"
    grid = Table.grid(padding=(0, 3))
    grid.title = f"Where to look next{where}"
    grid.title_justify = "left"
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    if not stack_running:
        grid.add_row(f"epochstream up{flags}{up_flags}", f"serve these runs again at {api_url}")
    grid.add_row(f"{api_url}/", "the web page: curves with the best epoch, GPU, flags, errors")
    grid.add_row(f"curl {api_url}/runs/{ids['crash']}", "the failed run, with its full traceback")
    grid.add_row(f"epochstream analyze {ids['overfit'][:12]}{flags}", "the verdict on the overfitting run, and why")
    grid.add_row(f"epochstream watch {ids['diverge'][:12]} --once{flags}", "sparklines and flags of one run")
    grid.add_row(f"epochstream runs{flags}", "every run, with flags and recommendations")
    grid.add_row(f'epochstream sql "SELECT * FROM trends"{flags}', "SQL on the catalog (works without the stack)")
    return grid


@app.command()
def demo(
    epochs: int = typer.Option(None, min=1, help="Epochs per training (default: each kind's own)."),
    epoch_delay: float = typer.Option(0.4, min=0, help="Pause per epoch, so progress can be followed."),
    workers: int = typer.Option(2, min=1, help="Worker processes, if the demo starts the stack."),
    port: int = typer.Option(None, help="API port, if the demo starts the stack (busy 8000: a free one)."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    keep: bool = typer.Option(False, help="Keep the stack it started running after the summary (Ctrl-C stops)."),
) -> None:
    """Run 4 real PyTorch trainings (converges, overfits, diverges to NaN, crashes) and summarise them."""
    from rich.console import Console

    from epochstream.cli.api_client import ApiClient
    from epochstream.settings import Settings, settings_env
    from epochstream.stack import Stack, port_free, running_stack

    console = Console(highlight=False)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C: trainings and stack stopped
    if importlib.util.find_spec("torch") is None:
        fail("the demo trains small PyTorch models: pip install 'epochstream[torch]' (CPU is fine), or `make demo`")
    with user_errors():
        settings = build_settings(api_port=port, data_dir=data_dir)
        settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
        state = running_stack(settings.data_dir)
        stack = None
        if state and state.get("api_url") and state.get("broker_url"):
            api_url, broker_url = state["api_url"], state["broker_url"]
            console.print(f"using the stack already running on {settings.data_dir} (API {api_url})")
        else:
            if port is None and not port_free(settings.api_host, settings.api_port):
                settings = settings.model_copy(update={"api_port": 0})
            stack = Stack(settings, workers=workers, scheduler_interval=0.5, say=console.print)
            stack.start()
            api_url, broker_url = stack.api_url, stack.broker_url
    env = settings_env(settings.model_copy(update={"redis_url": broker_url}))
    client = ApiClient.from_settings(settings, api_url)
    trainings: list[Training] = []
    interrupted = False
    try:
        trainings = [launch(k, env, settings.data_dir / "logs", epochs, epoch_delay) for k in KINDS]
        interrupted = not follow(client, trainings, console)
        console.print()
        console.print(summary_table(trainings))
        failed = next((t for t in trainings if t.summary.get("status") == "failed"), None)
        if failed and failed.summary.get("error"):
            console.print(f"[red]demo-{failed.kind} failed:[/] {failed.summary['error']}")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for t in trainings:
            if t.process.poll() is None:
                t.process.send_signal(signal.SIGINT)  # the producer records the run as interrupted
        for t in trainings:
            try:
                t.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                t.process.kill()
                t.process.wait()
        client.close()
        if stack is not None:
            if keep and not interrupted:
                console.print(next_steps(trainings, api_url, settings.data_dir, True))
                console.print("the stack keeps running: Ctrl-C drains and stops it")
                stack.serve()
            else:
                try:
                    stack.stop(drain=True)
                except KeyboardInterrupt:  # a second Ctrl-C: stop at once, but still leave nothing running
                    stack.stop(drain=False, force=True)
                    interrupted = True
    if interrupted:
        fail("demo interrupted", code=130)
    if not (keep and stack is not None):
        console.print()
        if stack is not None:  # stopped now: name where the next `up` will serve (not this run's spare port)
            api_url = f"http://127.0.0.1:{port or Settings().api_port or 8000}"
        flags = f" --data-dir {data_dir}" if data_dir else ""
        console.print(next_steps(trainings, api_url, settings.data_dir, stack is None, flags,
                                 f" --port {port}" if port else ""))
    if any(not t.summary for t in trainings):
        fail("some trainings never reached the API; their logs are named in the summary above")


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def follow(client: ApiClient, trainings: list[Training], console) -> bool:
    """Live progress until every run is finished in the API; False when interrupted."""
    from rich.live import Live

    settle_deadline: float | None = None
    try:
        with Live(progress_table(trainings), console=console, refresh_per_second=4) as live:
            while True:
                with user_errors():
                    for t in trainings:
                        poll(client, t)
                live.update(progress_table(trainings))
                if all(t.done for t in trainings):
                    return True
                if all(t.process.poll() is not None for t in trainings):
                    settle_deadline = settle_deadline or time.monotonic() + SETTLE_TIMEOUT_S
                    if time.monotonic() > settle_deadline:
                        return True
                time.sleep(0.5)
    except KeyboardInterrupt:
        return False


@app.command("demo-train")
def demo_train(
    kind: str = typer.Argument(..., help=f"One of: {', '.join(KINDS)}."),
    epochs: int = typer.Option(None, min=1, help="Epochs (default: the kind's own)."),
    epoch_delay: float = typer.Option(0.0, min=0, help="Pause per epoch."),
    project: str = typer.Option("demo", help="Project name of the run."),
) -> None:
    """One demo training, publishing to the configured broker (docker-compose's example trainer)."""
    if kind not in KINDS:
        fail(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    from epochstream.demo.train import main as train_main

    args = [kind, "--epoch-delay", str(epoch_delay), "--project", project]
    if epochs:
        args += ["--epochs", str(epochs)]
    raise typer.Exit(train_main(args))
