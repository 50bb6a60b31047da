"""The NOC console in chromium: sign-in, and counts that match the API.

The WM runs on a real port; the page is read as an operator sees it (rendered DOM).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import NO_BACKGROUND, background, screenshot
from tests.support.database import refused_database_url
from tests.support.servers import serve_in_thread
from tests.wm.conftest import ADMIN, ADMIN_TOKEN, BACKEND, INGEST, INGEST_TOKEN, wm_settings
from tests.wm.support import T0, entry, push_body, sample
from ticketing_common.db import create_engine, make_sessionmaker
from wm_service.main import create_app


@pytest.fixture
def wm_url(wm_database_url: str, tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(create_app(wm_settings(wm_database_url, tmp_path))) as server:
        body = push_body(*(entry(f"E{i}", sample(20.0 + i / 10, T0)) for i in range(7)))
        response = httpx.post(
            f"{server.url}/api/v1/aggregations/snr-upstream", json=body, headers=INGEST
        )
        assert response.status_code == 200, response.text
        yield server.url


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/console")
    page.fill("#token", token)
    page.click("button[type=submit]")


def test_sign_in_shows_the_overview_with_the_apis_counts(page: Page, wm_url: str) -> None:
    """The admin token signs in; the open-ticket total is the API's open count."""
    sign_in(page, wm_url, ADMIN_TOKEN)
    page.wait_for_selector("#tickets-by-kind")
    api = httpx.get(f"{wm_url}/api/v1/tickets", headers=ADMIN).json()["counts"]
    assert page.inner_text("#open-total") == str(api["open"]) == "7"
    assert "snr-upstream" in page.inner_text("#pushes")
    # No ticket in error (no BE took them): the count is drawn muted, not on red.
    assert page.inner_text("b[data-stage=error]") == "0"
    assert background(page, ".stage.error") == NO_BACKGROUND
    screenshot(page, "console-overview")


def test_the_overview_shows_a_be_whose_outcome_reports_are_refused(page: Page, wm_url: str) -> None:
    """A BE's heartbeat says how many of its outcome reports wait and how many were refused as
    invalid; the backends table shows both, the refused ones marked."""
    health = {
        "platforms": [],
        "processing_enabled": True,
        "revisions": {"Completed": 5},
        "oldest_received_age_seconds": 0,
        "reports_waiting": 3,
        "reports_refused": 2,
    }
    registration = {"url": "http://127.0.0.1:9", "intake_token": "i", "health": health}
    answer = httpx.put(f"{wm_url}/api/v1/backends/be7", json=registration, headers=BACKEND)
    assert answer.status_code == 200, answer.text
    sign_in(page, wm_url, ADMIN_TOKEN)
    row = page.locator("#backends tbody tr", has_text="be7")
    assert row.locator("td.reports").inner_text() == "3 waiting · 2 refused"
    assert row.locator(".refused").inner_text() == "2 refused"
    screenshot(page, "console-reports-refused")


def test_the_ingest_token_cannot_sign_in(page: Page, wm_url: str) -> None:
    """The aggregator's token may push, never operate: the sign-in page refuses it."""
    sign_in(page, wm_url, INGEST_TOKEN)
    assert page.locator("[role=alert]").inner_text() == "This token cannot sign in."
    page.goto(f"{wm_url}/console")
    assert page.url.endswith("/console/login")
    screenshot(page, "console-login-refused")


def test_sign_out_ends_the_session(page: Page, wm_url: str) -> None:
    """After signing out, the overview sends the browser back to the sign-in page."""
    sign_in(page, wm_url, ADMIN_TOKEN)
    page.click("header form button")
    page.goto(f"{wm_url}/console")
    assert page.url.endswith("/console/login")


def test_a_database_outage_is_a_page_that_says_so_and_reloads(
    page: Page, wm_database_url: str, tmp_path: Path
) -> None:
    """With the WM's database away, a console page is an HTML page for people (503, what is
    wrong, reloading by itself), not the API's JSON; once the database is back it shows."""
    app = create_app(wm_settings(wm_database_url, tmp_path))
    with serve_in_thread(app) as server:
        sign_in(page, server.url, ADMIN_TOKEN)
        page.wait_for_selector("#tickets-by-kind")
        working = app.state.sessionmaker
        app.state.sessionmaker = make_sessionmaker(create_engine(refused_database_url()))
        try:
            response = page.goto(f"{server.url}/console")
            assert response is not None and response.status == 503
            assert response.headers["retry-after"] == "5"
            assert page.locator("h1").inner_text() == "The WM's database is unavailable"
            assert "reloads by itself every 5 s" in page.locator("[role=alert]").inner_text()
            refresh = page.locator("meta[http-equiv=refresh]").get_attribute("content")
            assert refresh == "5"
            screenshot(page, "console-database-unavailable")
            # The API keeps its JSON shape for the same outage.
            api = httpx.get(f"{server.url}/api/v1/tickets", headers=ADMIN)
            assert api.status_code == 503 and api.json()["error"]["code"] == "unavailable"
        finally:
            app.state.sessionmaker = working
        page.goto(f"{server.url}/console")
        page.wait_for_selector("#tickets-by-kind")
