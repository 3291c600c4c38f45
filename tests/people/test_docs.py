"""The README's examples for people, run for real: the quickstart, the producer ACL, the SQL lines.

Blocks are found by their `<!-- example: NAME -->` marker in README.md.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import redis

from epochstream.broker import ServerProcess
from producer import Publisher, start_run
from tests.conftest import settings_env
from tests.draining import drain_all
from tests.people.conftest import ROOT, epochstream
from tests.readmodel import summary as stored_summary

DOCS = (ROOT / "README.md",)


def example(name: str) -> str:
    for path in DOCS:
        text = path.read_text() if path.exists() else ""
        match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
        if match:
            return match.group(1)
    raise AssertionError(f"no `<!-- example: {name} -->` block in README.md")


def sql_lines() -> list[list[str]]:
    text = "\n".join(p.read_text() for p in DOCS if p.exists())
    return [shlex.split(line)[2:] for line in text.splitlines() if line.startswith("epochstream sql ")]


def test_quickstart_publishes_sample_weighted_epochs(settings, redis_client):
    code = example("quickstart")
    result = subprocess.run([sys.executable, "-c", code], env=settings_env(settings), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[-1]
    drain_all(redis_client, settings, via_rq=True)
    summary = stored_summary(settings, run_id)
    assert summary["status"] == "completed" and summary["epochs"] == 3 and summary["project"] == "quickstart"
    assert summary["final_loss"] == pytest.approx((0.9 * 32 + 0.7 * 16) / 48 / 3)

    for args in sql_lines():  # the SQL examples, against what the quickstart wrote
        answer = epochstream(settings, "sql", *args)
        assert answer.returncode == 0, (args, answer.stderr)
    assert sql_lines(), "the docs show no `epochstream sql` example"


def test_the_producer_acl_allows_publishing_and_nothing_else(settings, tmp_path):
    server = ServerProcess(directory=tmp_path / "acl-server").start()
    try:
        admin = redis.Redis.from_url(server.url)
        rule = example("producer-acl").split()
        assert rule[:3] == ["ACL", "SETUSER", "producer"]
        rule = [r.replace("epochstream:", f"{settings.namespace}:") for r in rule]  # our test namespace
        admin.execute_command(*rule)
        password = next(r[1:] for r in rule if r.startswith(">"))
        producer_url = f"redis://producer:{password}@127.0.0.1:{server.port}/0"

        publisher = Publisher(settings.model_copy(update={"redis_url": producer_url}))
        with start_run(project="acl", publisher=publisher) as run:
            run.log_epoch(0, {"train/loss": 1.0}, samples=1)
        assert publisher.flush(10)
        publisher.close()
        streams = [f"{settings.namespace}:events:{{{p}}}" for p in range(settings.partitions)]
        assert sum(admin.xlen(s) for s in streams) == 3  # run_started, epoch, run_finished: all in

        as_producer = redis.Redis.from_url(producer_url)
        stream = next(s for s in streams if admin.xlen(s))
        for forbidden in (lambda: as_producer.xrange(stream), lambda: as_producer.delete(stream),
                          lambda: as_producer.keys("*"), lambda: as_producer.set("elsewhere", 1),
                          lambda: as_producer.xgroup_create(stream, "mine")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
    finally:
        server.stop()


def test_the_client_example_runs_against_a_real_api(settings, redis_client, api_server):
    code = example("quickstart")
    result = subprocess.run([sys.executable, "-c", code], env=settings_env(settings), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    drain_all(redis_client, settings, via_rq=True)
    env = {**settings_env(settings), "EPOCHSTREAM_API_PORT": str(api_server.port)}
    ran = subprocess.run([sys.executable, "-c", example("client")], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "6 ['run_id', 'epoch', 'metric', 'value']"  # 3 epochs x 2 metrics
    assert "'metric': 'val/loss'" in lines[1] and "'epoch': 2" in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["0", "1", "2"]  # follow: each epoch once, then the end


def test_should_stop_example_breaks_where_early_stopping_would(settings):
    result = subprocess.run([sys.executable, "-c", example("should-stop")], env=settings_env(settings), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "stop_early"]  # what the README's comment says
