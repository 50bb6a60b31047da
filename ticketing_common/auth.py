"""Bearer-token guards: 401 without a token, 403 with a wrong one, constant-time comparison."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request
from pydantic import SecretStr

from ticketing_common.errors import Forbidden, Unauthorized


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_token(*allowed: Callable[[Request], SecretStr]) -> Callable[[Request], None]:
    """A FastAPI dependency accepting any of the tokens the getters return for this request.

    Getters read the token from the app's settings at request time, so tests and operators
    can run several apps with different tokens in one process.
    """

    def dependency(request: Request) -> None:
        presented = bearer_token(request)
        if presented is None:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        if not any(_matches(presented, getter(request)) for getter in allowed):
            raise Forbidden("the bearer token is not valid for this endpoint")

    return dependency


def _matches(presented: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())
