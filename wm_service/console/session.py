"""Console sign-in: the admin token buys an HttpOnly, SameSite=Strict session cookie.

The cookie is stateless (any WM replica can check it) and signed with a key derived from the
admin token, so rotating the token signs everyone out. Each form carries a CSRF token bound
to the session; a POST without the right one is refused. The ingest token cannot sign in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from pydantic import SecretStr

COOKIE = "wm_console"
LIFETIME_SECONDS = 12 * 3600  # one NOC shift, with margin


@dataclass(frozen=True)
class ConsoleSession:
    nonce: str
    expires_at: int

    def csrf_token(self, key: bytes) -> str:
        return _sign(key, f"csrf:{self.nonce}")


def session_key(admin_token: SecretStr) -> bytes:
    return hmac.new(
        admin_token.get_secret_value().encode(), b"wm-console-session-v1", hashlib.sha256
    ).digest()


def token_is_admin(presented: str, admin_token: SecretStr) -> bool:
    return hmac.compare_digest(presented.encode(), admin_token.get_secret_value().encode())


def issue(key: bytes, *, now: float | None = None) -> tuple[ConsoleSession, str]:
    """A new session and its cookie value."""
    session = ConsoleSession(
        secrets.token_urlsafe(16), int((time.time() if now is None else now) + LIFETIME_SECONDS)
    )
    body = f"{session.expires_at}.{session.nonce}"
    return session, f"{body}.{_sign(key, body)}"


def verify(key: bytes, cookie: str | None, *, now: float | None = None) -> ConsoleSession | None:
    """The session a cookie carries, or None when it is missing, forged or expired."""
    if not cookie or cookie.count(".") != 2:
        return None
    expires, nonce, signature = cookie.split(".")
    if not hmac.compare_digest(signature, _sign(key, f"{expires}.{nonce}")):
        return None
    if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
        return None
    return ConsoleSession(nonce, int(expires))


def csrf_ok(key: bytes, session: ConsoleSession, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(presented, session.csrf_token(key))


def _sign(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
