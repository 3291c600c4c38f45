"""Finding runs among 10,000 in real headless Chromium: search, project, status and tag filters, sort and
paging are the API's (every /runs request the page makes carries the filter and a bounded `limit`)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from epochstream.settings import Settings
from producer.testing import unique_namespace
from tests.conftest import ApiServer
from tests.people.browser import Page, needs_chromium
from tests.people.pagedata import PageData

pytestmark = needs_chromium
RUNS = 10_000


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory):
    settings = Settings(redis_url=redis_url, namespace=unique_namespace(), partitions=4,
                        data_dir=tmp_path_factory.mktemp("find") / "data")
    data = PageData(settings)
    for i in range(RUNS):
        data.run(f"r{i:05d}", project=f"proj-{i % 20:02d}", name=f"run-{i:05d}", config={"lr": 0.1},
                 tags=["even" if i % 2 == 0 else "odd"], epochs=[{"val/loss": 1.0 + (i % 97) / 100}],
                 finish="failed" if i % 10 == 0 else "completed")
    data.write()
    server = ApiServer(settings)
    yield server
    server.stop()


def rows(page: Page) -> list[str]:
    return page.page.locator("#runs tbody tr").evaluate_all("rs => rs.map(r => r.dataset.runId)")


def test_a_filter_narrows_the_table_of_ten_thousand_runs_through_the_api(browser, site):
    page = Page(browser, site.base_url)
    p = page.page
    asked: list[dict] = []
    p.on("request", lambda r: asked.append(parse_qs(urlparse(r.url).query)) if urlparse(r.url).path == "/runs"
         else None)
    page.open()
    assert len(rows(page)) == 100
    assert p.inner_text("#runs-count") == "10,000 runs · showing 100"

    page.act(lambda: p.fill("#f-project", "proj-07") or p.press("#f-project", "Enter"))
    assert p.inner_text("#runs-count") == "500 matching runs · showing 100"
    assert all(r[1:].isdigit() and int(r[1:]) % 20 == 7 for r in rows(page))
    page.act(lambda: p.fill("#f-q", "run-001") or p.press("#f-q", "Enter"))
    assert rows(page) == ["r00187", "r00167", "r00147", "r00127", "r00107"]  # newest first
    page.act(lambda: p.select_option("#f-sort", "best"))
    best = p.locator("#runs tbody tr td.num:nth-of-type(5)").all_inner_texts()
    assert [float(b.split()[0]) for b in best] == sorted(float(b.split()[0]) for b in best)

    page.act(p.go_back)  # Back undoes the sort, then the search
    assert rows(page) == ["r00187", "r00167", "r00147", "r00127", "r00107"]
    page.act(p.go_back)
    assert p.inner_text("#runs-count") == "500 matching runs · showing 100"
    assert p.input_value("#f-q") == ""

    page.act(lambda: p.select_option("#f-status", "failed"))  # proj-07 has no failed run
    assert p.inner_text("#runs-count") == "0 matching runs"
    assert rows(page) == [] and p.inner_text("#no-runs") == "No run matches these filters."
    page.act(lambda: p.fill("#f-project", "") or p.press("#f-project", "Enter"))
    assert p.inner_text("#runs-count") == "1,000 matching runs · showing 100"
    assert set(p.locator("#runs tbody .badge").all_inner_texts()) == {"failed"}
    page.open("#tag=odd&per=50")
    assert p.inner_text("#runs-count") == "5,000 matching runs · showing 50"
    page.act(lambda: p.click("#more"))  # the next page, by the API's cursor
    assert len(rows(page)) == 100 and len(set(rows(page))) == 100
    assert all(int(r[1:]) % 2 == 1 for r in rows(page))

    listing = [q for q in asked if "limit" in q]
    assert listing and all(int(q["limit"][0]) <= 500 for q in listing)  # never the whole list at once
    assert any(q.get("project") == ["proj-07"] and q.get("q") == ["run-001"] for q in listing)
    assert any("cursor" in q for q in listing)
    assert page.errors == []
    page.close()
