"""`epochstream spool status|push`: what training processes on this host left undelivered, and delivering it."""

from __future__ import annotations

import json

import typer

from epochstream.cli import app

spool_app = typer.Typer(help="The producers' on-disk spool on this host: what waits, and delivering it.",
                        no_args_is_help=True)
app.add_typer(spool_app, name="spool")


def _settings():
    from epochstream.cli.common import build_settings

    return build_settings()


def _broker_line(settings) -> str:
    from epochstream.broker import answers, resolve_url
    from epochstream.errors import EpochstreamError
    from epochstream.stack import masked

    try:
        url = resolve_url(settings)
    except EpochstreamError as exc:
        return f"broker: none ({exc})"
    return f"broker: {masked(url)} {'answers' if answers(url) else 'does not answer'}"


@spool_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text.")) -> None:
    """List the spooled segments: whose they are, their runs and event counts, and why they wait."""
    from epochstream.cli.client import user_errors
    from producer.courier import spool_directory
    from producer.spool.status import spool_status

    with user_errors():
        settings = _settings()
        directory = spool_directory(settings)
        owners = spool_status(directory)
    if as_json:
        typer.echo(json.dumps({"directory": str(directory), "owners": [
            {"owner": o.owner, "host": o.host, "pid": o.pid, "state": o.state, "why": o.why, "bytes": o.bytes,
             "segments": [str(p) for p in o.segments], "events": o.events, "torn_bytes": o.torn_bytes,
             "runs": [vars(r) for r in o.runs]} for o in owners]}, indent=2))
        return
    typer.echo(f"spool {directory} (EPOCHSTREAM_SPOOL_DIR / EPOCHSTREAM_NAMESPACE)")
    typer.echo(_broker_line(settings))
    if not owners:
        typer.echo("nothing waits: every spooled event was delivered")
        return
    for o in owners:
        typer.echo(f"{o.owner}: {o.events} event(s) of {len(o.runs)} run(s) in {len(o.segments)} segment(s), "
                   f"{o.bytes} bytes; {o.state}: {o.why}")
        for r in o.runs:
            typer.echo(f"  run {r.run_id}: {r.events} event(s), seq {r.first_seq}..{r.last_seq}")
        if o.torn_bytes:
            typer.echo(f"  {o.torn_bytes} byte(s) of a torn last record (its writer died mid-write) are skipped")
    total = sum(o.events for o in owners)
    typer.echo(f"{total} event(s) wait in {sum(len(o.segments) for o in owners)} segment(s) of {len(owners)} "
               f"process(es)")


@spool_app.command("push")
def push(timeout: float = typer.Option(10.0, min=0, help="Retry for at most this many seconds."),
         follow: bool = typer.Option(False, help="Keep delivering what dead producers leave, until Ctrl-C.")) -> None:
    """Deliver, in order and exactly once, the segments whose writer is gone; exit 1 if any are left."""
    from epochstream.cli.client import fail, user_errors
    from producer.courier import Courier
    from producer.courier import push as push_now

    with user_errors():
        settings = _settings()
        if follow:
            import signal
            import threading

            stopped = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stopped.set())
            courier = Courier(settings).start()
            typer.echo(f"delivering what dead producers leave in {courier.publisher.spool_dir} until Ctrl-C")
            stopped.wait()
            courier.stop()
            typer.echo(f"delivered {courier.publisher.published} event(s)")
            return
        import logging

        # This command says what happened in its own words (one `error:` line when something is left).
        logging.getLogger("epochstream.producer").setLevel(logging.ERROR)
        result = push_now(settings, timeout)
    again = f", {result.already_there} were already there" if result.already_there else ""
    typer.echo(f"delivered {result.delivered} event(s){again}")
    if result.dropped:
        typer.echo(f"dropped {result.dropped} event(s) the broker refused for good (WRONGTYPE: a key of ours holds "
                   "another type)")
    waiting = [o for o in result.left if o.state != "orphaned"]
    for o in waiting:
        typer.echo(f"left alone: {o.events} event(s) of {o.owner}: {o.why}")
    if result.orphans_left:
        fail(f"{result.orphans_left} event(s) whose writer is gone are still undelivered"
             f"{f' ({result.error})' if result.error else ''}: start the broker (or fix EPOCHSTREAM_REDIS_URL) and "
             "run `epochstream spool push` again")
