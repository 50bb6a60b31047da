"""FastAPI dependencies of the WM: the request's session (the one commit point) and auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.auth import require_token
from ticketing_common.db import session_scope
from ticketing_common.errors import PayloadTooLarge, UnsupportedMediaType


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    async for session in session_scope(request.app.state.sessionmaker):
        yield session


# scope="function": the commit happens before the response is sent, so a client that got a
# 2xx can rely on the data being stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def _ingest_token(request: Request) -> SecretStr:
    token: SecretStr = request.app.state.ingest_token
    return token


def _admin_token(request: Request) -> SecretStr:
    token: SecretStr = request.app.state.admin_token
    return token


# Operators may push too (replaying an aggregator export by hand); the aggregator's token
# opens nothing but the pushes.
require_ingest = require_token(_ingest_token, _admin_token)
require_admin = require_token(_admin_token)


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request, *, accepted: tuple[str, ...]) -> str:
    """The request's media type (JSON when none is given), 415 when not in `accepted`."""
    value = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if value not in accepted:
        raise UnsupportedMediaType(
            f"content-type {value!r} is not accepted; use one of {', '.join(accepted)}"
        )
    return value
