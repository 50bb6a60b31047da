"""A real browser for the pages people look at: Debian's chromium driven by Playwright.

Playwright's own browser download is unreachable here, so it drives the system chromium
(`make test` installs it when missing). Screenshots land in tests/.artifacts/ (git-ignored)
for a human to look at after a run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
# No background traffic: the machine's network is closed and chromium would keep retrying.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
        )
    return path


# Per module, not per session: Playwright's sync API keeps an event loop in the main thread
# while it is open, which the async tests of other modules must not find there.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


# What getComputedStyle answers for an element with no background of its own.
NO_BACKGROUND = "rgba(0, 0, 0, 0)"
# The console's --bad colour (console.css), as getComputedStyle writes it.
BAD_BACKGROUND = "rgb(253, 232, 232)"


def background(page: Page, selector: str) -> str:
    """The element's background colour as the browser computed it."""
    colour: str = page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor")
    return colour


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
