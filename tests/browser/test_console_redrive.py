"""The console against the real system: an Error ticket re-driven from the browser completes.

Real processes (emulators, WM, a BE) as in tests/e2e; chromium signs in, finds the ticket in
the Error list with the platform's reason, re-drives it, and watches its page until the
ticket is completed with its work-order number. Screenshots in tests/.artifacts/.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import BAD_BACKGROUND, background, screenshot
from tests.e2e.conftest import WM_ADMIN, System, snr_entries, wait_for
from tests.e2e.conftest import now as now  # the fixtures of the e2e system
from tests.e2e.conftest import system as system

pytestmark = pytest.mark.e2e
ENTITY = "E2E-CCAP01:US-7"


def test_an_error_ticket_is_redriven_from_the_console(
    page: Page, system: System, now: datetime
) -> None:
    """Sign in, see the Error with its reason, re-drive it, see it completed."""
    system.be_overrides = {"BE_MAX_RETRIES": "0"}
    system.start(["be1"])
    system.emulator.set_faults(platform="sfyc", item_error_rate=1, endpoint="composite")
    system.push_snr(snr_entries([7], at=now), at=now)
    wait_for(
        lambda: system.wm_client.get("/api/v1/tickets", stage="error")["items"] != [],
        timeout=60,
        what="the ticket in error on the WM",
    )
    assert system.wm is not None
    page.goto(f"{system.wm.url}/console")
    page.fill("#token", WM_ADMIN)
    page.click("button[type=submit]")
    page.wait_for_selector("#stages")
    assert page.inner_text("b[data-stage=error]") == "1"
    assert background(page, ".stage.error") == BAD_BACKGROUND  # marked, unlike at zero
    screenshot(page, "console-overview-with-error")
    page.goto(f"{system.wm.url}/console/errors")
    row = page.locator("#errors tbody tr", has_text=ENTITY)
    assert "Emulated validation failure" in row.inner_text()
    screenshot(page, "console-errors")
    system.emulator.clear_faults()
    row.locator("input[name=actor]").fill("noc-ana")
    row.locator("button", has_text="Re-drive").click()
    page.wait_for_selector("#timeline")
    deadline = time.monotonic() + 60
    while page.inner_text("#stage") != "completed" and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    assert page.inner_text("#stage") == "completed"
    assert (
        page.inner_text("#work-order") == system.emulator.records("workorder")[0]["WorkOrderNumber"]
    )
    attempts = page.inner_text("#attempts")
    assert "workorder" in attempts and "operator_retry" in attempts and "link" in attempts
    screenshot(page, "console-ticket-timeline")
    page.goto(f"{system.wm.url}/console/tickets?q={ENTITY}")
    assert ENTITY in page.inner_text("#results")
