"""`epochstream worker`: an RQ worker for drain jobs, with the scheduling loop it needs beside it.

The process outlives broker outages: RQ's work loop quits on a lost connection (it is built to be restarted by
a supervisor), so the loop here waits for the broker with back-off and starts it again. A job running when
the broker went away goes on (the drain retries its batch itself) and its worker waits for it instead of
quitting; a job that died with it frees its partition by the lock's TTL rule (`workers.locks`).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import typer

from epochstream.cli import app
from epochstream.cli.common import build_settings


@app.command()
def worker(
    burst: bool = typer.Option(False, help="Drain what is queued now, then exit."),
    data_dir: Path = typer.Option(None, help="Data directory (EPOCHSTREAM_DATA_DIR)."),
    scheduler: bool = typer.Option(True, help="Also run the scheduling loop in a thread (--no-scheduler: not)."),
    interval: float = typer.Option(0.5, help="Scheduling interval in seconds."),
    spool: bool = typer.Option(True, help="Also deliver what dead producers on this host left in the spool "
                                          "(--no-spool: not)."),
) -> None:
    """Run an RQ worker that drains event partitions into the Parquet log."""
    import redis

    from epochstream.broker import connect, connect_queue, resolve_url, with_queue_url
    from epochstream.collector import DRAIN_GEN0, tune_collector
    from workers.catalog import CatalogBusy, ensure_catalog
    from workers.scheduling import drain_queue, run_scheduler, schedule_once

    settings = build_settings(data_dir=data_dir)
    url = resolve_url(settings)
    settings = with_queue_url(settings, url)  # RQ and the drain locks: never on a cluster
    courier = spool_courier(settings, url) if spool and not burst else None
    client, queue = connect(url), connect_queue(settings.queue_url)
    with contextlib.suppress(CatalogBusy):  # someone else is creating it right now
        ensure_catalog(settings)
    try:
        schedule_once(client, settings, url, queue)
    except (redis.ConnectionError, redis.TimeoutError) as exc:  # the loops below wait for the broker
        typer.echo(f"broker unavailable at start ({exc}); waiting for it", err=True)
    stop = threading.Event()
    if scheduler and not burst:
        thread = threading.Thread(target=run_scheduler, args=(connect(url), settings, url, interval),
                                  kwargs={"stop": stop.is_set, "queue": connect_queue(settings.queue_url)},
                                  name="epochstream-scheduler", daemon=True)
        thread.start()
    tune_collector(DRAIN_GEN0)  # before the first fork: every work horse inherits it
    try:
        work_through_outages(lambda: connect_queue(settings.queue_url), lambda c: [drain_queue(c, settings)],
                             burst)
    finally:
        stop.set()
        if courier is not None:
            courier.stop()


def spool_courier(settings, url: str):
    """Spooled events on this host reach the broker with no training process running (producer.courier)."""
    from producer.courier import Courier

    return Courier(settings, url_resolver=lambda _settings: url).start()


def outage_tolerant_worker_class():
    """rq's Worker, except that a broker outage while a job runs does not end the worker's wait for it, and it
    remembers whether its work loop ended because the queues were empty (burst mode's normal end)."""
    import contextlib

    import redis
    from rq import Worker

    class OutageTolerantWorker(Worker):
        queues_empty = False

        def maintain_heartbeats(self, job):
            try:
                super().maintain_heartbeats(job)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.log.warning("Worker %s: broker unavailable while job %s runs (%s); waiting for it",
                                 self.name, job.id, exc)

        def set_current_job_working_time(self, *args, **kwargs):
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):  # bookkeeping only
                super().set_current_job_working_time(*args, **kwargs)

        def unsubscribe(self):
            # rq sends UNSUBSCRIBE, then stops its command listener, and redis-py's stop() waits for the
            # listener to end. When the reply woke the listener before it was told to stop, it went back into
            # a read of up to 60 s, and the worker's exit waited for that read (3 of 16 burst workers took 61 s
            # to exit, the rest under 2 s). Told first, the listener ends on the reply.
            if not self.pubsub_thread:
                return
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub_thread.stop(timeout=0)  # the flag only: no wait yet
            with contextlib.suppress(redis.RedisError, OSError):  # the listener may have closed it already
                self.pubsub.unsubscribe()
            self.pubsub_thread.stop(timeout=COMMAND_STOP_S)
            self.pubsub.close()

        def dequeue_job_and_maintain_ttl(self, *args, **kwargs):
            result = super().dequeue_job_and_maintain_ttl(*args, **kwargs)
            self.queues_empty = result is None
            return result

    return OutageTolerantWorker


COMMAND_STOP_S = 2.0  # how long a worker's exit waits for its command listener to end
OUTAGE_BACKOFF_S = (0.2, 5.0)  # first and longest wait between looks at a broker that is away


def work_through_outages(make_client, queues_of, burst: bool) -> None:
    """Run rq's work loop until it ends by itself (burst: queues empty; warm shutdown); when it ends because
    the broker went away, wait for the broker with back-off and run it again with a fresh connection."""
    import logging
    import signal
    import time

    import redis
    from rq.exceptions import StopRequested

    log = logging.getLogger("epochstream.worker")
    worker_class = outage_tolerant_worker_class()
    first, longest = OUTAGE_BACKOFF_S
    stopping: list[int] = []
    while True:
        client = make_client()
        delay = first
        while not _answers(client):
            log.warning("worker: broker unavailable; looking again in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, longest)
            if stopping:
                return
        worker = None
        try:
            worker = worker_class(queues_of(client), connection=client)
            worker.work(burst=burst)  # installs rq's own SIGTERM/SIGINT handlers (warm shutdown)
        except (redis.ConnectionError, redis.TimeoutError) as exc:  # rq's start or teardown, the broker away
            log.warning("worker: broker unavailable (%s)", exc)
        except StopRequested:
            return
        # rq's handlers would talk to the broker; between work loops a signal only ends this process
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: stopping.append(signum))
        if worker is not None:
            if worker.horse_pid:  # rq gave up on a running job: let the drain finish (it retries by itself)
                worker.wait_for_horse()
            # rq 2.x has no public accessor for a warm shutdown it was asked for
            if worker._stop_requested or worker._shutdown_requested_date is not None:
                return
            if burst and worker.queues_empty:
                return
        if stopping:
            return
        client.close()
        time.sleep(first)  # a loop that ended for another reason is not restarted in a tight loop


def _answers(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
