"""`epochstream dlq list|replay`: what was rejected and why; re-ingest it after an upgrade."""

from __future__ import annotations

import typer

from epochstream.cli import app

dlq_app = typer.Typer(help="Dead letters: rejected events with their reasons.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


def _client_and_settings():
    from epochstream.broker import connect, resolve_url
    from epochstream.cli.common import build_settings

    settings = build_settings()
    return connect(resolve_url(settings)), settings


@dlq_app.command("list")
def dlq_list(count: int = typer.Option(100, help="At most this many, oldest first."),
             payload: bool = typer.Option(False, help="Show the first 200 bytes of each payload.")) -> None:
    """Show dead letters: when, from which stream entry, and why."""
    from workers.dead_letters import list_dead_letters

    client, settings = _client_and_settings()
    letters = list_dead_letters(client, settings, count)
    for letter in letters:
        typer.echo(f"{letter.id}  {letter.stream} {letter.entry_id}  deliveries={letter.deliveries}  {letter.reason}")
        if payload:
            typer.echo(f"    {letter.payload[:200]!r}")
    typer.echo(f"{len(letters)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay() -> None:
    """Re-publish every dead letter the running code now accepts; the rest stay, with today's reason."""
    from workers.dead_letters import replay

    client, settings = _client_and_settings()
    result = replay(client, settings)
    for dlq_id, reason in result.still_failing:
        typer.echo(f"still failing {dlq_id}: {reason}")
    typer.echo(f"replayed {result.replayed}, still failing {len(result.still_failing)}")
