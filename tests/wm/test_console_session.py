"""Console sessions over HTTP: cookie flags, CSRF on every POST, forged cookies refused."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from tests.wm.conftest import ADMIN_TOKEN
from wm_service.console import session as console_session


async def test_the_session_cookie_is_httponly_strict_and_scoped(client: httpx.AsyncClient) -> None:
    """Signing in sets an HttpOnly, SameSite=Strict cookie for /console only."""
    response = await client.post("/console/login", data={"token": ADMIN_TOKEN})
    assert response.status_code == 303 and response.headers["location"] == "/console"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie


async def test_a_post_without_the_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    """Signing out with the cookie but without the form's CSRF token keeps the session."""
    await client.post("/console/login", data={"token": ADMIN_TOKEN})
    response = await client.post("/console/logout", data={"csrf": "forged"})
    assert "form expired" in response.text
    assert (await client.get("/console")).status_code == 200


async def test_a_forged_or_expired_cookie_is_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    """A cookie signed with another key, or one past its lifetime, is no session."""
    other = console_session.session_key(SecretStr("not-the-admin-token"))
    _, forged = console_session.issue(other)
    key = console_session.session_key(SecretStr(ADMIN_TOKEN))
    _, expired = console_session.issue(key, now=0)
    for cookie in (forged, expired, "garbage"):
        client.cookies.set(console_session.COOKIE, cookie, path="/console")
        response = await client.get("/console")
        assert response.status_code == 303 and response.headers["location"] == "/console/login"
