"""The web page for daily work, in real headless Chromium against a real uvicorn: runs overlaid and compared,
step curves, smoothing, state in the URL (Back/Forward, shared links), honest status, a failed run's whole
error, and /docs with no network."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import httpx
import pytest

from epochstream.settings import Settings
from producer.testing import unique_namespace
from tests.conftest import ApiServer
from tests.people.browser import Page, needs_chromium
from tests.people.pagedata import TRACEBACK, PageData, diverging, healthy, noisy_steps, overfitting

pytestmark = needs_chromium

HEALTHY_METRICS = sorted(healthy(1)[0])
ERROR = ("RuntimeError: CUDA error: an illegal memory access was encountered\n"
         "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might "
         "be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1. (the last line of the error)")
CONFIGS = {"cmp-a": {"lr": 0.1, "layers": 2, "optimizer": {"name": "adam", "beta": 0.9}, "batch": 64},
           "cmp-b": {"lr": 0.01, "layers": 4, "optimizer": {"name": "sgd", "beta": 0.9}, "batch": 64},
           "cmp-c": {"lr": 0.001, "layers": 4, "optimizer": {"name": "adam", "beta": 0.9}, "batch": 64}}


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory):
    settings = Settings(redis_url=redis_url, namespace=unique_namespace(), partitions=4,
                        data_dir=tmp_path_factory.mktemp("page") / "data")
    data = PageData(settings)
    data.run("cmp-a", project="vision", name="resnet-a", config=CONFIGS["cmp-a"], tags=["sweep"], epochs=healthy(8),
             steps=noisy_steps(1500, seed=1), system=6, gpus=1)
    data.run("cmp-b", project="vision", name="resnet-b", config=CONFIGS["cmp-b"], tags=["sweep"],
             epochs=healthy(8, 1.2), steps=noisy_steps(1200, seed=2, scale=1.2))
    data.run("cmp-c", project="vision", name="resnet-c", config=CONFIGS["cmp-c"], epochs=healthy(8, 1.5))
    data.run("st-div", project="status", name="diverged", epochs=diverging(6))
    data.run("st-over", project="status", name="overfitting", epochs=overfitting(15))
    data.run("st-stale", project="status", name="stale", epochs=healthy(4), finish=None,
             start=data.now - timedelta(hours=3))
    data.run("st-fail", project="status", name="failed", epochs=healthy(3), finish="failed", error=ERROR,
             traceback=TRACEBACK)
    data.run("empty", project="misc", name="no epochs yet", finish=None)
    data.run("live", project="misc", name="still training", epochs=healthy(8)[:3], finish=None, start=data.now)
    # a training host whose clock runs three days ahead (beyond EPOCHSTREAM_FUTURE_SKEW_S, one day)
    data.run("ahead", project="clock", name="clock ahead", epochs=healthy(3), start=data.now + timedelta(days=3))
    data.write()
    server = ApiServer(settings)
    server.data = data
    yield server
    server.stop()


@pytest.fixture
def page(browser, site):
    p = Page(browser, site.base_url)
    yield p
    assert p.errors == [], p.errors
    p.close()


def hash_of(page: Page) -> str:
    return urlparse(page.page.url).fragment


def slide(page: Page, value: str) -> None:
    """Move the smoothing slider as a person does: input events while dragging, change on release."""
    page.page.eval_on_selector("#smoothing", """(e, v) => { e.value = v; e.dispatchEvent(new Event('input'));
        e.dispatchEvent(new Event('change')); }""", value)


def test_three_selected_runs_give_three_curves_per_chart_and_three_legend_entries(page, tmp_path):
    page.open("#runs=cmp-a")
    page.shot(tmp_path, "single-run.png")
    assert page.charts("epoch") == {m: 1 for m in HEALTHY_METRICS}

    page.open("#runs=cmp-a,cmp-b,cmp-c")
    p = page.page
    page.shot(tmp_path, "comparison.png")
    assert page.charts("epoch") == {m: 3 for m in HEALTHY_METRICS}
    assert p.locator("#legend .legend-entry .legend-name").all_inner_texts() == ["resnet-a", "resnet-b", "resnet-c"]
    strokes = p.locator("figure[data-metric='val/loss'] path.curve").evaluate_all(
        "ps => ps.map(p => p.getAttribute('stroke'))")
    assert len(set(strokes)) == 3  # one colour per run
    p.hover("figure[data-metric='val/loss'] svg.chart", position={"x": 300, "y": 100})
    tip = p.inner_text("#tooltip")  # every run's value at the pointer
    assert tip.startswith("epoch ") and all(f"resnet-{k}:" in tip for k in "abc"), tip
    # Step curves: the two runs that log steps, nothing for the one that does not.
    assert page.charts("step") == {"train/loss": 2, "learning_rate": 2}
    # The comparison: the config keys that differ (nested ones by their dotted name), best value and epoch.
    differ = p.locator("#compare-table tr.config-row.differs th").all_inner_texts()
    assert differ == ["layers", "lr", "optimizer.name"]
    assert p.locator("#compare-table thead th[data-run]").count() == 3
    assert "@ epoch 7" in p.locator("#compare-table tr.best-row").inner_text()
    assert p.locator("#parallel path.pc-line").count() == 3
    assert p.locator("#parallel .pc-axis").evaluate_all("gs => gs.map(g => g.dataset.key)") == [
        "layers", "lr", "optimizer.name", "best val/loss"]
    assert p.is_hidden("#run-detail")


def test_ticking_runs_adds_curves_and_back_restores_the_previous_selection(page):
    page.open("#runs=cmp-a")
    p = page.page
    page.act(lambda: p.check("#runs tr[data-run-id='cmp-b'] input.pick"))
    assert hash_of(page) == "runs=cmp-a,cmp-b"
    page.act(lambda: p.check("#runs tr[data-run-id='cmp-c'] input.pick"))
    assert page.charts("epoch")["val/loss"] == 3
    page.act(p.go_back)
    assert hash_of(page) == "runs=cmp-a,cmp-b"
    assert page.charts("epoch")["val/loss"] == 2
    assert p.is_checked("#runs tr[data-run-id='cmp-b'] input.pick")
    assert not p.is_checked("#runs tr[data-run-id='cmp-c'] input.pick")
    page.act(p.go_back)
    assert page.charts("epoch")["val/loss"] == 1
    page.act(p.go_forward)
    assert page.charts("epoch")["val/loss"] == 2
    # A click on a row (not its box) shows that run alone; Back returns to the comparison.
    page.act(lambda: p.click("#runs tr[data-run-id='cmp-c'] .run-name"))
    assert hash_of(page) == "runs=cmp-c"
    assert p.is_visible("#run-detail")
    page.act(p.go_back)
    assert p.locator("#legend .legend-entry").count() == 2


def test_an_unknown_run_in_the_link_says_so(page):
    page.open("#runs=no-such-run")
    p = page.page
    assert p.is_visible("#notice")
    assert "No run “no-such-run”" in p.inner_text("#notice")
    assert p.locator("path.curve").count() == 0
    assert p.locator("#legend .legend-entry").count() == 0
    # Next to a known run: that one is drawn, the unknown one named.
    page.open("#runs=cmp-a,no-such-run")
    assert page.charts("epoch")["val/loss"] == 1
    assert "no-such-run" in p.inner_text("#notice")
    page.act(lambda: p.click("#notice button"))
    assert hash_of(page) == "runs=cmp-a"
    assert p.is_hidden("#notice")
    # The old single-run link still works.
    page.open("#run=cmp-b")
    assert p.locator("#legend .legend-name").all_inner_texts() == ["resnet-b"]


def test_filters_sort_and_smoothing_live_in_the_hash_and_a_shared_link_restores_them(page, browser, site):
    page.open("#runs=cmp-a")
    p = page.page
    page.act(lambda: p.fill("#f-project", "vision") or p.press("#f-project", "Enter"))
    assert [r for r in p.locator("#runs tbody tr").evaluate_all("rs => rs.map(r => r.dataset.runId)")] == [
        "cmp-c", "cmp-b", "cmp-a"]
    page.act(lambda: p.select_option("#f-sort", "best"))
    page.act(lambda: slide(page, "0.6"))
    shared = hash_of(page)
    assert shared == "runs=cmp-a&project=vision&sort=best&smooth=0.6"
    rows = p.locator("#runs tbody tr").evaluate_all("rs => rs.map(r => r.dataset.runId)")
    assert rows == ["cmp-a", "cmp-b", "cmp-c"]  # lowest best value first

    other = Page(browser, site.base_url).open(f"#{shared}")  # someone opening the link
    q = other.page
    assert q.input_value("#f-project") == "vision"
    assert q.input_value("#f-sort") == "best"
    assert q.inner_text("#smoothing-value") == "0.60"
    assert q.locator("#runs tbody tr").evaluate_all("rs => rs.map(r => r.dataset.runId)") == rows
    assert q.locator("#legend .legend-name").all_inner_texts() == ["resnet-a"]
    assert other.errors == []
    other.close()


def test_smoothing_draws_the_ema_with_the_raw_curve_faint_behind(page):
    page.open("#runs=cmp-a,cmp-b&smooth=0.9")
    p = page.page
    for kind, metric in (("epoch", "val/loss"), ("step", "train/loss")):
        chart = p.locator(f"figure[data-kind={kind}][data-metric='{metric}']")
        assert chart.locator("path.curve").count() == 2
        assert chart.locator("path.raw").count() == 2
        smooth = chart.locator("path.curve").first.get_attribute("d")
        raw = chart.locator("path.raw").first.get_attribute("d")
        assert smooth != raw
    # Without smoothing: no faint copies.
    page.act(lambda: slide(page, "0"))
    assert p.locator("path.raw").count() == 0
    assert p.inner_text("#smoothing-value") == "off"
    assert "smooth" not in hash_of(page)


def test_a_training_that_goes_on_is_redrawn_by_polling_and_what_was_folded_stays_folded(page, site):
    page.open("#runs=live")
    p = page.page
    curve = "figure[data-kind=epoch][data-metric='val/loss'] path.curve"
    assert p.locator(curve).get_attribute("data-points") == "3"
    p.click("#config-box summary")  # the reader folds the config away
    p.evaluate("document.querySelector(\"tr[data-run-id='cmp-a']\").marked = true")
    site.data.more_epochs("live", 3, healthy(8)[3:5])
    site.data.write()
    p.wait_for_function(f"document.querySelector(\"{curve}\").dataset.points === '5'", timeout=20_000)
    assert p.inner_text("#run-meta").count("5 epochs") == 1
    assert p.evaluate("document.getElementById('config-box').open") is False
    p.wait_for_function("document.querySelector(\"tr[data-run-id='live'] td.num\").textContent === '5'")
    # Only the row of the run that changed was redrawn: the others are the very same elements.
    assert p.evaluate("document.querySelector(\"tr[data-run-id='cmp-a']\").marked") is True


def test_a_run_without_data_draws_no_curve_and_says_so(page, tmp_path):
    """The checks of drawn curves must be able to fail: a run without epochs draws none."""
    page.open("#runs=empty")
    p = page.page
    assert p.locator("path.curve").count() == 0
    assert page.charts("epoch") == {}
    assert p.is_visible("#no-epochs")
    assert p.inner_text("#best-epoch") == "–"
    assert p.is_visible("#system-empty")
    assert p.is_hidden("#steps-section")


def test_status_looks_honest(page):
    page.open("#project=status&runs=st-fail")
    p = page.page
    health = dict(p.locator("#runs tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.runId, r.querySelector('.badge').dataset.health])"))
    assert health == {"st-div": "diverged", "st-over": "overfitting", "st-stale": "stale", "st-fail": "failed"}
    page.open("#runs=cmp-a")
    ok = p.locator("#runs tr[data-run-id='cmp-a'] .badge")
    healthy_look = ok.evaluate("b => getComputedStyle(b).backgroundColor")
    assert ok.inner_text() == "completed"
    page.open("#project=status&runs=st-fail")
    looks = p.locator("#runs tbody .badge").evaluate_all("bs => bs.map(b => getComputedStyle(b).backgroundColor)")
    assert healthy_look not in looks  # none of them looks like a healthy finish
    assert len(set(looks)) == 4  # and each its own
    texts = p.locator("#runs tbody .badge").all_inner_texts()
    assert "completed · diverged" in texts and "completed · overfitting" in texts


def test_a_failed_run_shows_its_whole_error_last_line_in_view_and_the_traceback_one_click_away(page):
    page.open("#runs=st-fail")
    p = page.page
    assert p.inner_text("#error-text") == ERROR
    no_inner_scroll = "e => e.scrollHeight <= e.clientHeight + 1 && getComputedStyle(e).overflowY !== 'hidden'"
    assert p.locator("#error-text").evaluate(no_inner_scroll)
    assert p.is_visible("#error-last")
    assert p.inner_text("#error-last").endswith(TRACEBACK.splitlines()[-1])
    assert not p.is_visible("#traceback-text")
    p.click("#traceback summary")
    assert p.inner_text("#traceback-text") == TRACEBACK
    assert p.locator("#traceback-text").evaluate(no_inner_scroll)  # the innermost frame is not hidden in a box
    p.locator("#traceback-text").scroll_into_view_if_needed()
    assert p.locator("#flags .ok").count() == 0


def test_docs_and_page_work_with_the_network_blocked(browser, site):
    context = browser.new_context()
    outside: list[str] = []

    def only_loopback(route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = Page(context, site.base_url)
    p = page.page
    p.goto(f"{site.base_url}/docs")
    p.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(p.locator(".opblock-summary-path").all_inner_texts())
    assert {"/runs", "/runs/{run_id}", "/runs/{run_id}/epochs", "/runs/{run_id}/steps", "/runs/{run_id}/best",
            "/runs/{run_id}/system", "/healthz"} <= {t.replace("\u200b", "") for t in paths}
    page.open("#runs=cmp-a")
    assert page.charts("epoch")["val/loss"] == 1
    assert outside == []  # nothing was even asked of the outside
    p.goto(f"{site.base_url}/redoc")
    p.wait_for_selector("h2:has-text('Epoch history')", timeout=20_000)  # ReDoc's section of /epochs
    assert all(url.endswith("logo-mini.svg") for url in outside)  # only ReDoc's "powered by" logo is missing
    assert page.errors == []
    context.close()


def test_a_run_whose_clock_ran_ahead_says_so_in_the_table_and_its_detail(page, site):
    """The API reports `clock_ahead_s` for a run whose timestamps were beyond the allowed skew (ordered by
    arrival instead); the page shows it in the run's row and, with the amount, in its detail."""
    ahead = httpx.get(f"{site.base_url}/runs/ahead").json()["clock_ahead_s"]
    assert ahead > 2 * 86400
    page.open("#project=clock&runs=ahead")
    p = page.page
    assert p.locator("#runs tr[data-run-id='ahead'] .clock-ahead").inner_text() == "clock ahead"
    text = p.inner_text("#clock-ahead")
    assert text.startswith("Clock ahead:") and f"{int(ahead // 3600)} h" in text, text
    page.open("#runs=cmp-a")
    assert p.locator("#clock-ahead").count() == 0  # a run with an honest clock: no such line
    assert p.locator("#runs tr[data-run-id='cmp-a'] .clock-ahead").count() == 0
    assert p.locator("#runs tr[data-run-id='ahead'] .clock-ahead").count() == 1
