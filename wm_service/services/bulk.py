"""Access to the session's asyncpg connection for set-based SQL (unnest arrays, no ORM rows).

Bulk statements run on the very connection and transaction of the session, so they commit or
roll back with everything else the request did.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession


async def driver_connection(session: AsyncSession) -> asyncpg.Connection[Any]:
    """The asyncpg connection under `session`, with the session's transaction begun."""
    # A trivial statement through SQLAlchemy opens the transaction on the connection, so
    # the raw statements that follow are part of it (asyncpg would autocommit otherwise).
    connection = await session.connection()
    await connection.execute(text("SELECT 1"))
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
    assert driver.is_in_transaction(), "bulk SQL must run inside the session's transaction"
    return driver
