"""FastAPI dependencies of the BE: the request's session (the transaction boundary), auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.config import BESettings
from ticketing_common.auth import require_token
from ticketing_common.db import session_scope
from ticketing_common.errors import DomainError


def get_settings(request: Request) -> BESettings:
    settings: BESettings = request.app.state.settings
    return settings


class NotStored(DomainError):
    """The request's transaction could not commit: nothing was stored, the client may resend."""

    status_code = 503
    code = "not_stored"


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, else rolled back.

    A failed commit answers 503 (the WM keeps its rows undelivered and sends them again)
    instead of an unhandled error, which uvicorn would turn into a dropped connection.
    """
    committing = False
    try:
        async for session in session_scope(request.app.state.sessionmaker):
            yield session
            committing = True
    except SQLAlchemyError as exc:
        if not committing:
            raise
        raise NotStored("the database could not store this request; nothing was stored") from exc


# scope="function": the commit happens before the response is sent, so a client that got a
# 2xx (the WM marking its rows delivered, an operator's PATCH) can rely on the data being
# stored; a failed commit becomes an error response instead.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def _intake_token(request: Request) -> SecretStr:
    return get_settings(request).intake_token


def _admin_token(request: Request) -> SecretStr:
    return get_settings(request).admin_token


require_intake = require_token(_intake_token)
require_admin = require_token(_admin_token)
