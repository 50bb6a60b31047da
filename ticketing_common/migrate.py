"""Run a service's Alembic migrations programmatically, safely from several processes at once.

Each service has its own Alembic environment under `migrations/<service>/`. `upgrade_to_head`
holds a Postgres advisory lock for the duration, so a WM and two BEs starting together on
one server (or two replicas of one service) never run the same migration twice.
"""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing_common.db import normalize_url

MIGRATIONS_ROOT = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_ROOT / service))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    config.attributes["advisory_lock_key"] = advisory_lock_key(service)
    return config


def advisory_lock_key(service: str) -> int:
    return zlib.crc32(f"ticketing-migrations:{service}".encode())


def head_revision(service: str) -> str | None:
    script = ScriptDirectory.from_config(alembic_config(service, "postgresql://unused/x"))
    return script.get_current_head()


def _upgrade(service: str, url: str, revision: str) -> None:
    command.upgrade(alembic_config(service, url), revision)


def _downgrade(service: str, url: str, revision: str) -> None:
    command.downgrade(alembic_config(service, url), revision)


async def upgrade_to_head(service: str, url: str) -> None:
    # env.py runs its own event loop; a worker thread keeps it off ours.
    await asyncio.to_thread(_upgrade, service, url, "head")


async def downgrade_to(service: str, url: str, revision: str) -> None:
    await asyncio.to_thread(_downgrade, service, url, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (a plain read: /readyz calls this often)."""
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        return await conn.scalar(text("SELECT version_num FROM alembic_version"))


async def is_at_head(engine: AsyncEngine, service: str) -> bool:
    return await current_revision(engine) == head_revision(service)


async def readiness_problems(engine: AsyncEngine, service: str) -> dict[str, str]:
    """Checks for /readyz: the database answers and its schema is at the code's head."""
    try:
        current = await current_revision(engine)
    except Exception as exc:  # any driver/OS error means "not reachable"
        return {"database": f"unreachable: {type(exc).__name__}"}
    head = head_revision(service)
    if current != head:
        return {"migrations": f"database at {current}, code expects {head}"}
    return {}
