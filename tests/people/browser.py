"""Driving the web page in real headless Chromium (Debian's `chromium`, by path: no browser download).

`apt-get install -y chromium` (Debian; `.ci/run` does this) and Python playwright (the dev extra). Tests wait
for what the page says it has drawn (`body[data-ready]`, a render counter), never for a fixed time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
SCREENSHOTS = "EPOCHSTREAM_SCREENSHOTS"  # a folder: the README's screenshots are written there when set

needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `apt-get install -y chromium` (Debian) to run the "
                                                "browser tests; .ci/run does this"),
]


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


class Page:
    """A page of the app with its JS errors collected; `act` runs an action and waits for the redraw."""

    def __init__(self, browser_or_context, base_url: str):
        self.page = browser_or_context.new_page(viewport=VIEWPORT) if hasattr(browser_or_context, "contexts") \
            else browser_or_context.new_page()
        self.base_url = base_url
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self, hash_: str = "") -> Page:
        """Go to `/` + hash_ and wait until the page has drawn it. On the page already open, only the hash
        changes (no reload): then wait for the redraw it causes."""
        before = self.page.evaluate("window.__epochstream ? window.__epochstream.renders : -1") \
            if self.page.url.startswith(self.base_url) else -1
        self.page.evaluate("window.__same_document = true")
        self.page.goto(f"{self.base_url}/{hash_}")
        if before >= 0 and self.page.evaluate("window.__same_document === true"):
            self.page.wait_for_function(f"window.__epochstream.renders > {before}", timeout=20_000)
        else:
            self.page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        return self

    def renders(self) -> int:
        return self.page.evaluate("window.__epochstream.renders")

    def act(self, action) -> None:
        """Do `action` (a callable), then wait until the page has drawn again."""
        before = self.renders()
        action()
        self.page.wait_for_function(f"window.__epochstream.renders > {before}", timeout=20_000)

    def charts(self, kind: str) -> dict[str, int]:
        """metric -> curves drawn, for each chart of a section (epoch, step, system)."""
        return self.page.evaluate("""kind => Object.fromEntries([...document.querySelectorAll(
            `figure.chart-card[data-kind="${kind}"]`)].map(f => [f.dataset.metric,
            f.querySelectorAll("path.curve").length]))""", kind)

    def shot(self, tmp_path: Path, name: str) -> None:
        self.page.screenshot(path=str(tmp_path / name), full_page=True)
        folder = os.environ.get(SCREENSHOTS)
        if folder:  # for the README: the top of the page, tall enough to show the first charts
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.set_viewport_size({"width": VIEWPORT["width"], "height": 1500})
            self.page.screenshot(path=str(Path(folder) / name), full_page=False)
            self.page.set_viewport_size(VIEWPORT)

    def close(self) -> None:
        self.page.close()
