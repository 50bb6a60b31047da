"""FastAPI dependencies of the BE: the request's session (the transaction boundary), auth."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from pydantic import SecretStr
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.config import BESettings
from ticketing_common.auth import require_token
from ticketing_common.db import session_scope


def get_settings(request: Request) -> BESettings:
    settings: BESettings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, else rolled back."""
    async for session in session_scope(request.app.state.sessionmaker):
        yield session


def _intake_token(request: Request) -> SecretStr:
    return get_settings(request).intake_token


def _admin_token(request: Request) -> SecretStr:
    return get_settings(request).admin_token


require_intake = require_token(_intake_token)
require_admin = require_token(_admin_token)
