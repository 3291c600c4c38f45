"""The web page at `/` in real headless Chromium, fed by the whole pipeline: producer -> Redis -> drain -> read
model -> uvicorn -> page. What is drawn is checked against what was logged and what the API answers."""

from __future__ import annotations

import math

import httpx

from producer import Publisher, start_run
from schemas.system import GpuSample
from tests.draining import drain_all
from tests.people.browser import Page, needs_chromium

pytestmark = needs_chromium

VAL = [1.2, 0.8, 0.55, 0.5, 0.58, 0.7, float("nan")]
EPOCH_METRICS = ["train/loss", "val/loss", "val/accuracy", "val/perplexity", "learning_rate", "gradient_norm",
                 "throughput"]  # the last one custom: every logged metric gets its chart


def publish(settings, redis_client, val, *, fail=False, steps=0) -> str:
    publisher = Publisher(settings)
    try:
        with start_run(project="web", name="page-run", config={"lr": 0.01}, publisher=publisher) as run:
            for step in range(steps):
                run.log_step(step, {"train/loss": 3.0 / (1 + step), "learning_rate": 0.01})
            for epoch, v in enumerate(val):
                run.log_epoch(epoch, {"train/loss": 2.0 / (epoch + 1), "val/loss": v, "val/accuracy": 0.5 + epoch / 20,
                                      "val/perplexity": math.exp(v), "learning_rate": 0.01 * 0.9 ** epoch,
                                      "gradient_norm": 1.0 + epoch % 2, "throughput": 900.0 + epoch}, samples=32)
                run.log_system(cpu_percent=30.0 + epoch, rss_mb=800.0 + epoch,
                               gpus=[GpuSample(index=0, name="H100", mem_allocated_mb=1000.0 + 100 * epoch,
                                               mem_total_mb=81559.0, utilization_pct=40.0 + 5 * epoch)])
            if fail:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
    except RuntimeError:
        pass
    assert publisher.flush(10)
    publisher.close()
    drain_all(redis_client, settings, via_rq=True)
    return run.run_id


def test_page_draws_every_logged_metric_and_the_best_epoch_of_the_api(settings, redis_client, api_server, browser,
                                                                      tmp_path):
    run_id = publish(settings, redis_client, VAL, fail=True, steps=40)
    best = httpx.get(f"{api_server.base_url}/runs/{run_id}").json()["best_epoch"]
    assert best == 3

    page = Page(browser, api_server.base_url).open(f"#runs={run_id}")
    p = page.page
    page.shot(tmp_path, "run.png")
    assert page.charts("epoch") == {name: 1 for name in EPOCH_METRICS}  # one chart per metric, one curve each
    for name, finite_points in (("train/loss", len(VAL)), ("val/loss", len(VAL) - 1)):
        path = p.locator(f"figure[data-kind=epoch][data-metric='{name}'] path.curve")
        assert int(path.get_attribute("data-points")) == finite_points
        assert path.get_attribute("d").count("L") == finite_points - 1  # a real polyline, not a dot
    val_chart = p.locator("figure[data-kind=epoch][data-metric='val/loss']")
    assert val_chart.locator(".nonfinite").count() == 1  # the NaN epoch is marked, not dropped
    assert val_chart.locator(".best-label").text_content() == f"best epoch {best}"
    assert p.locator("figure[data-kind=epoch][data-metric='train/loss'] .best-label").count() == 0
    assert p.inner_text("#best-epoch") == str(best)
    assert page.charts("step") == {"train/loss": 1, "learning_rate": 1}
    system = page.charts("system")
    assert system == {"cpu_percent": 1, "rss_mb": 1, "gpu0/mem_allocated_mb": 1, "gpu0/utilization_pct": 1}

    assert "an illegal memory access" in p.inner_text("#error-text")
    assert not p.is_visible("#traceback-text")  # folded, one click away
    p.click("#traceback summary")
    assert "Traceback (most recent call last)" in p.inner_text("#traceback-text")
    assert p.locator(f"#runs tbody tr[data-run-id='{run_id}'] .badge").inner_text() == "failed"
    assert p.locator("#flags .ok").count() == 0  # a failed run never shows a green "no flags"
    assert page.errors == []

