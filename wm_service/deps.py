"""FastAPI dependencies of the WM: the request's session (the one commit point) and auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.auth import require_token
from ticketing_common.db import session_scope


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
