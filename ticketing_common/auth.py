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
from fastapi.security.utils import get_authorization_scheme_param
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


class TokenGuard:
    """A FastAPI dependency accepting any of the named tokens the getters return for this
    request, and returning the name of the one presented (for endpoints whose behaviour
    depends on who calls); 401 without a token, 403 when it matches none.

    Getters read the token from the app's settings at request time, so tests and operators
    can run several apps with different tokens in one process. `authenticate` is the same
    check on a bare request: web.BoundaryRoute runs it before the body is read, so a bad body
    without a token is a 401, not a 422 that tells a stranger about the API.
    """

    def __init__(self, **allowed: TokenGetter) -> None:
        self._allowed = allowed

    def __call__(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER_SCHEME),
    ) -> str:
        return self._check(request, credentials.credentials if credentials else None)

    def authenticate(self, request: Request) -> str:
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        return self._check(request, token if scheme.lower() == "bearer" else None)

    def _check(self, request: Request, token: str | None) -> str:
        presented = token.strip() if token else None
        if not presented:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        for name, getter in self._allowed.items():
            if _matches(presented, getter(request)):
                return name
        raise Forbidden("the bearer token is not valid for this endpoint")


def identify_token(**allowed: TokenGetter) -> TokenGuard:
    """The guard of endpoints that accept any of `allowed` and need to know which one."""
    return TokenGuard(**allowed)


def require_token(*allowed: TokenGetter) -> TokenGuard:
    """The guard of the endpoints that accept any of `allowed` (see TokenGuard)."""
    return TokenGuard(**{str(n): getter for n, getter in enumerate(allowed)})


def _matches(presented: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())
