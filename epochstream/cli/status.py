"""`epochstream status`: the figures of `GET /metrics`, for a human, read from the brokers and the read model."""

from __future__ import annotations

from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def status(data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR).")) -> None:
    """Per partition: stream length, pending entries, oldest pending, ingest lag; dead letters, events stored,
    drain batch durations. Exits 1 when a broker or the read model cannot be read."""
    from epochstream.broker import connect, connect_queue, mask, resolve_queue_url, resolve_url
    from epochstream.pipeline_status import gather
    from epochstream.readmodel.reader import ReadModelReader

    settings = build_settings(data_dir=data_dir)
    streams = queue = None
    streams_url = queue_url = None
    problems = []
    try:
        streams_url = resolve_url(settings)
        streams = connect(streams_url, socket_timeout=2.0)
    except Exception as exc:  # noqa: BLE001 - shown, with what can still be read
        problems.append(f"streams broker: {exc}")
    try:
        queue_url = resolve_queue_url(settings, streams_url)
        queue = connect_queue(queue_url, socket_timeout=2.0)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"queue broker: {exc}")
    reader = ReadModelReader(settings.data_dir, settings.read_model_url)
    figures = gather(settings, streams, queue, reader)
    typer.echo(f"streams broker  {mask(streams_url) if streams_url else '-'}  "
               f"{figures.broker_error or ('ok' if streams is not None else 'not reached')}")
    typer.echo(f"queue broker    {mask(queue_url) if queue_url else '-'}  "
               f"{figures.queue_error or ('ok' if queue is not None else 'not reached')}")
    typer.echo(f"read model      {reader.store.describe()}  {figures.read_model_error or 'ok'}")
    for line in render(figures):
        typer.echo(line)
    for problem in problems:
        typer.echo(f"problem: {problem}")
    if problems or figures.broker_error or figures.queue_error or figures.read_model_error:
        raise typer.Exit(1)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"


def quantile_bound(buckets, count: int, q: float) -> float | None:
    """The smallest bucket bound holding at least `q` of the batches (an upper bound of that quantile)."""
    for bound, cumulative in buckets:
        if count and cumulative >= q * count:
            return bound
    return None


def render(figures) -> list[str]:
    """Pure: the table and totals of a `PipelineStatus`."""
    lines = []
    if figures.partitions:
        lines.append(f"{'partition':>9}  {'length':>8}  {'pending':>8}  {'oldest pending':>14}  {'ingest lag':>10}  "
                     "applied up to")
        for p in figures.partitions:
            lines.append(f"{p.partition:>9}  {p.length:>8}  {p.pending:>8}  {seconds(p.oldest_pending_age_s):>14}  "
                         f"{seconds(p.ingest_lag_s):>10}  {p.applied_position}")
        lines.append(f"ingest lag (max over partitions): {seconds(figures.ingest_lag_s)}")
    if figures.dead_letters is not None:
        lines.append(f"dead letters: {figures.dead_letters}" + ("  (`epochstream dlq list`)" if figures.dead_letters
                                                                 else ""))
    if figures.events_stored is not None:
        lines.append(f"events stored: {figures.events_stored}")
    durations = figures.batch_durations
    if durations is not None and durations.count:
        p50 = quantile_bound(durations.buckets, durations.count, 0.5)
        p99 = quantile_bound(durations.buckets, durations.count, 0.99)
        lines.append(f"drain batches: {durations.count}, mean {durations.sum / durations.count:.3f}s, "
                     f"p50 <= {p50}s, p99 <= {p99}s")
    elif durations is not None:
        lines.append("drain batches: none yet")
    return lines
