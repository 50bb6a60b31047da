"""Bearer-token guards: 401 without a token, 403 with a wrong one, constant-time comparison.

An unset token locks its endpoints instead of opening them: it becomes a random value nobody
knows (`locked_token`, `token_or_locked`), and the process warns that it is unset.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from ticketing_common.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)


def locked_token() -> SecretStr:
    """A random token nobody knows: what an unset token becomes (a settings default_factory)."""
    return SecretStr(secrets.token_urlsafe(32))


def warn_unset_token(variable: str) -> None:
    log.warning("%s is not set: its endpoints reject every request until it is", variable)


def token_or_locked(value: SecretStr | None, *, variable: str) -> SecretStr:
    """`value` when set and not empty, else a locked token and a warning naming `variable`."""
    if value is not None and value.get_secret_value():
        return value
    warn_unset_token(variable)
    return locked_token()


# Declared as a security scheme, so every guarded operation shows the padlock in /docs and
# "Authorize" works; the 401/403 answers stay ours (auto_error off).
BEARER_SCHEME = HTTPBearer(
    scheme_name="bearerAuth",
    description="The service's token for this endpoint: Authorization: Bearer <token>.",
    auto_error=False,
)


TokenGetter = Callable[[Request], SecretStr]


def identify_token(**allowed: TokenGetter) -> Callable[..., str]:
    """A FastAPI dependency returning the name of the token presented, among `allowed`
    (e.g. `identify_token(backend=..., admin=...)`), for endpoints whose behaviour depends
    on who calls; 401 without a token, 403 when it matches none.

    Getters read the token from the app's settings at request time, so tests and operators
    can run several apps with different tokens in one process.
    """

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER_SCHEME),
    ) -> str:
        presented = credentials.credentials.strip() if credentials else None
        if not presented:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        for name, getter in allowed.items():
            if _matches(presented, getter(request)):
                return name
        raise Forbidden("the bearer token is not valid for this endpoint")

    return dependency


def require_token(*allowed: TokenGetter) -> Callable[..., str]:
    """A FastAPI dependency accepting any of the tokens the getters return for this request."""
    return identify_token(**{str(n): getter for n, getter in enumerate(allowed)})


def _matches(presented: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())
