"""The worker-side commands end to end through the real CLI: dlq list/replay, compact, rebuild."""

from __future__ import annotations

from typer.testing import CliRunner

from epochstream.cli import app
from epochstream.layout import DataLayout
from schemas.keys import PAYLOAD_FIELD, Keys, partition_of
from tests.conftest import settings_env
from tests.draining import drain_all
from tests.readmodel import summary as stored_summary
from tests.workers.helpers import publish_runs
from tests.workers.test_drain import POISON
from workers.log_reader import segments


def test_dlq_compact_rebuild_commands(settings, redis_client):
    env = settings_env(settings)
    runner = CliRunner()
    publish_runs(settings.model_copy(update={"drain_batch": 5}), runs=2, epochs=10)
    redis_client.xadd(Keys(settings.namespace, settings.partitions).stream(0), {PAYLOAD_FIELD: POISON["bad json"]})
    drain_all(redis_client, settings.model_copy(update={"drain_batch": 5}))

    listed = runner.invoke(app, ["dlq", "list", "--payload"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "payload is not JSON" in listed.output and "{not json" in listed.output
    assert "1 dead letter(s)" in listed.output
    replayed = runner.invoke(app, ["dlq", "replay"], env=env)
    assert "replayed 0, still failing 1" in replayed.output

    layout = DataLayout(settings.data_dir)
    assert len(segments(layout, "epoch")) > 1
    compacted = runner.invoke(app, ["compact", "--min-age", "0"], env=env)
    assert compacted.exit_code == 0, compacted.output
    partitions = len({partition_of(run, settings.partitions) for run in ("r0", "r1")})
    assert "epoch:" in compacted.output and len(segments(layout, "epoch")) == partitions  # one per partition

    before = stored_summary(settings, "r0")
    rebuilt = runner.invoke(app, ["rebuild"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt the read model of 2 run(s)" in rebuilt.output
    after = stored_summary(settings, "r0")
    assert after["versions"].generation != before["versions"].generation  # new ETags after a rebuild
    assert after["best_epoch"] == before["best_epoch"] == 5
    assert redis_client.get(Keys(settings.namespace, settings.partitions).drain_lock(0)) is None  # locks released


def test_a_worker_drains_with_the_tuned_collector(settings, redis_client):
    """`epochstream worker` tunes the collector before it forks (`epochstream.collector`): its work horses run
    jobs with it. A job that reports the horse's own collector settings shows it."""
    import subprocess
    import sys

    from rq.job import Job

    from epochstream.collector import DRAIN_GEN0
    from tests.conftest import ROOT
    from workers.scheduling import drain_queue

    thresholds = drain_queue(redis_client, settings).enqueue("gc.get_threshold")
    frozen = drain_queue(redis_client, settings).enqueue("gc.get_freeze_count")
    subprocess.run([sys.executable, "-c", "from epochstream.cli import main; main()", "worker", "--burst",
                    "--no-spool"], env=settings_env(settings), cwd=ROOT, check=True, timeout=120,
                   capture_output=True)
    # the older generations' thresholds: CPython's defaults, kept
    assert Job.fetch(thresholds.id, connection=redis_client).return_value() == (DRAIN_GEN0, 10, 10)
    assert Job.fetch(frozen.id, connection=redis_client).return_value() > 10_000  # the imported modules


def test_a_worker_exit_does_not_wait_out_its_command_listeners_read(settings, redis_client):
    """rq's worker sends UNSUBSCRIBE, then stops its command listener; when the listener got the reply first it
    went back into a 60 s read, and the worker's exit waited for it (3 of 16 burst workers took 61 s). The
    reply is made to arrive late here, every time: the listener must still end on it."""
    import time

    from epochstream.cli.worker import outage_tolerant_worker_class
    from workers.scheduling import drain_queue

    worker = outage_tolerant_worker_class()([drain_queue(redis_client, settings)], connection=redis_client)
    worker.subscribe()
    send = worker.pubsub.unsubscribe

    def late_unsubscribe(*args):
        answer = send(*args)
        time.sleep(0.3)  # the listener reads the reply meanwhile, and reads on if it was not yet told to stop
        return answer

    worker.pubsub.unsubscribe = late_unsubscribe
    started = time.monotonic()
    worker.unsubscribe()
    assert not worker.pubsub_thread.is_alive()
    assert time.monotonic() - started < 10  # not the listener's 60 s read
