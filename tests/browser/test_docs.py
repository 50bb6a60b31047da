"""/docs renders every operation of each service's OpenAPI 3.1 document, offline, in chromium.

The old bundled Swagger UI 4 answered 200 and then showed "Unable to render this definition";
only a browser sees that, so these tests count the operations Swagger UI actually drew.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Page

from be_service.main import create_app as create_be_app
from emulators.app import create_app as create_emulator_app
from tests.be.conftest import Emulator, be_settings
from tests.be.conftest import emulator as emulator  # the fixture, shared with the BE tests
from tests.browser.conftest import screenshot
from tests.support.servers import serve_in_thread
from tests.wm.conftest import wm_settings
from wm_service.main import create_app as create_wm_app

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head"}


@pytest.fixture(params=["wm", "be", "emulators"])
def service(
    request: pytest.FixtureRequest,
    wm_database_url: str,
    be_database_url: str,
    emulator: Emulator,
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """(name, base URL) of one service served over real HTTP."""
    name = request.param
    app: FastAPI
    if name == "wm":
        app = create_wm_app(wm_settings(wm_database_url, tmp_path))
    elif name == "be":
        app = create_be_app(be_settings(be_database_url, emulator))
    else:
        app = create_emulator_app()
    with serve_in_thread(app) as server:
        yield name, server.url


def _operations(base_url: str) -> int:
    document = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    return sum(
        1
        for operations in document["paths"].values()
        for method in operations
        if method in HTTP_METHODS
    )


def test_docs_list_every_operation(page: Page, service: tuple[str, str]) -> None:
    """Swagger UI draws one block per operation of the document, with no render error."""
    name, base_url = service
    expected = _operations(base_url)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{base_url}/docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    screenshot(page, f"docs-{name}")
    assert page.locator(".opblock").count() == expected
    assert page.locator(".errors-wrapper").count() == 0
    assert "Unable to render" not in page.content()
    assert all(url.startswith(base_url) for url in requests), "docs must not leave the service"


def test_authorize_offers_the_bearer_scheme(page: Page, service: tuple[str, str]) -> None:
    """Services with tokens show "Authorize" with the bearer scheme; the emulators have none."""
    name, base_url = service
    page.goto(f"{base_url}/docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    authorize = page.locator("button.authorize")
    if name == "emulators":
        assert authorize.count() == 0
        return
    authorize.click()
    page.wait_for_selector(".auth-container", timeout=5_000)
    assert "bearerAuth" in page.locator(".auth-container").first.inner_text()
