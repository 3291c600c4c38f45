"""The web page at `/` in real headless Chromium: the curves draw, the best epoch matches the API.

Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs it) and Python playwright,
which drives that binary by path: no browser download.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

from producer import Publisher, start_run
from schemas.system import GpuSample
from tests.people.conftest import drain_all

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `apt-get install -y chromium` (Debian) to run the "
                                                "browser test; .ci/run does this"),
]

VAL = [1.2, 0.8, 0.55, 0.5, 0.58, 0.7, float("nan")]


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extra)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def publish(settings, redis_client, val, fail=False) -> str:
    publisher = Publisher(settings)
    try:
        with start_run(project="web", name="page-run", config={"lr": 0.01}, publisher=publisher) as run:
            for epoch, v in enumerate(val):
                run.log_epoch(epoch, {"train/loss": 2.0 / (epoch + 1), "val/loss": v}, samples=32)
                run.log_system(gpus=[GpuSample(index=0, name="H100", mem_allocated_mb=1000.0 + 100 * epoch,
                                               mem_total_mb=81559.0, utilization_pct=40.0 + 5 * epoch)])
            if fail:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
    except RuntimeError:
        pass
    assert publisher.flush(10)
    publisher.close()
    drain_all(redis_client, settings)
    return run.run_id


def open_run(browser, base_url: str, run_id: str):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base_url}/#run={run_id}")
    return page, errors


def test_page_draws_curves_and_the_best_epoch_of_the_api(settings, redis_client, api_server, browser, tmp_path):
    run_id = publish(settings, redis_client, VAL, fail=True)
    best = httpx.get(f"{api_server.base_url}/runs/{run_id}").json()["best_epoch"]
    assert best == 3

    page, errors = open_run(browser, api_server.base_url, run_id)
    page.wait_for_selector("#loss-chart[data-drawn=true] path.curve.val", timeout=20_000)
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

    for cls, finite_points in (("train", len(VAL)), ("val", len(VAL) - 1)):
        path = page.locator(f"#loss-chart path.curve.{cls}")
        assert path.count() == 1
        assert int(path.get_attribute("data-points")) == finite_points
        assert path.get_attribute("d").count("L") == finite_points - 1  # a real polyline, not a dot
    assert page.locator("#loss-chart .nonfinite").count() == 1  # the NaN epoch is marked, not dropped
    assert page.inner_text("#best-epoch") == str(best)
    assert page.locator("#loss-chart .best-label").text_content() == f"best epoch {best}"
    assert "an illegal memory access" in page.inner_text("#error-text")
    assert "Traceback (most recent call last)" in page.inner_text("#error-text")
    assert page.locator(f"#runs tbody tr[data-run-id='{run_id}'] .status").inner_text() == "failed"
    for chart in ("gpu-mem-chart", "gpu-util-chart"):
        assert page.locator(f"#{chart} path.curve").count() == 1, chart
    assert errors == []


def test_page_shows_no_curve_when_there_is_none(settings, redis_client, api_server, browser, tmp_path):
    """The check above must be able to fail: a run without epochs draws no curve, and says so."""
    run_id = publish(settings, redis_client, [])
    page, errors = open_run(browser, api_server.base_url, run_id)
    page.wait_for_selector("#loss-chart[data-drawn=empty]", timeout=20_000)
    page.screenshot(path=str(tmp_path / "empty.png"), full_page=True)
    assert page.locator("#loss-chart path.curve").count() == 0
    assert page.inner_text("#best-epoch") == "–"
    assert page.is_visible("#gpu-empty")
    assert errors == []
