"""SQL over a log on S3 (moto's server on loopback): the README's five queries answer exactly what they answer
over the same segment files on a local disk; through `epochstream sql` from a copy of the data directory at
another path; and in an analyst's own DuckDB session with the README's two lines."""

from __future__ import annotations

import shutil
import subprocess
import sys

from epochstream.layout import DataLayout
from epochstream.settings import settings_env
from producer import Publisher, start_run
from schemas.system import GpuSample
from tests.draining import drain_all
from tests.people.test_docs import example
from tests.workers.helpers import publish_runs
from tests.workers.test_maintenance import _readme_queries, _rows
from workers.catalog import query
from workers.log_store import log_store

CLI = "from epochstream.cli import main; main()"


def publish_sweep(settings) -> None:
    """Runs every README query has something to say about: a sweep by learning rate, one failed, GPU samples."""
    publisher = Publisher(settings)
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        run = start_run(project="resnet-sweep", name=f"lr{lr}", run_id=f"sweep{i}", config={"lr": lr},
                        publisher=publisher)
        for epoch in range(8):
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1), "val/loss": abs(epoch - 4 - i) + lr,
                                  "val/accuracy": 0.5 + epoch / 20, "learning_rate": lr}, samples=32)
            run.log_system(gpus=[GpuSample(index=0, mem_allocated_mb=1000.0 + epoch * 10 * (i + 1),
                                           utilization_pct=50.0 + i)], cpu_percent=10.0, rss_mb=500.0)
        if i == 2:
            run.finish("failed", error="RuntimeError: CUDA out of memory\n" + "x" * 500, exit_code=1)
        else:
            run.finish()
    assert publisher.flush(30)
    publisher.close()


def _download_log(s3_server, settings, into) -> None:
    """The bucket's log as a local `log/` directory: the same segment files, byte for byte."""
    bucket, _, prefix = settings.log_url.removeprefix("s3://").partition("/")
    client = s3_server.client()
    for key in s3_server.keys(bucket, prefix + "/"):
        target = into / "log" / key.removeprefix(prefix + "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))


def test_the_readme_queries_over_an_s3_log_from_any_data_directory(s3_settings, s3_server, redis_client, tmp_path):
    settings = s3_settings.model_copy(update={"drain_batch": 20})
    publish_runs(settings, runs=3, epochs=12, system_every=3)
    publish_sweep(settings)
    drain_all(redis_client, settings)
    queries = _readme_queries()
    over_s3 = [_rows(settings, q) for q in queries]
    assert all(over_s3), over_s3  # every one of the five has rows here
    assert not (settings.data_dir / "log").exists()

    # The same files on a local disk answer the same (the catalog notices the other log and remakes its views).
    local = settings.model_copy(update={"data_dir": tmp_path / "local-copy", "log_url": ""})
    shutil.copytree(settings.data_dir, local.data_dir)
    _download_log(s3_server, settings, local.data_dir)
    assert log_store(DataLayout.of(local)).live("epoch") and [_rows(local, q) for q in queries] == over_s3

    # A copy of the data directory at another path, through the command, from another working directory.
    copy = tmp_path / "elsewhere" / "mounted-data"
    shutil.copytree(settings.data_dir, copy)
    moved = settings.model_copy(update={"data_dir": copy})
    for q, rows in zip(queries, over_s3, strict=True):
        proc = subprocess.run([sys.executable, "-c", CLI, "sql", "--data-dir", str(copy), "--", q],
                              env=settings_env(moved), cwd="/", capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and f"{len(rows)} rows" in proc.stdout, proc.stdout + proc.stderr
    assert [_rows(moved, q) for q in queries] == over_s3

    # The README's own lines, in an analyst's session started in the data directory (AWS_* set, nothing else).
    proc = subprocess.run([sys.executable, "-c", example("s3-duckdb")], cwd=copy, env=settings_env(moved),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(query(settings, "SELECT count(*) AS n FROM epochs").to_pylist()[0]["n"]) \
        == str(3 * 12 + 3 * 8)
