"""A service's schema: its Alembic migrations, and whether a database is at their head.

Each service has its own Alembic environment under `migrations/<service>/`. Migrating holds a
Postgres advisory lock for the duration, so a WM and two BEs starting together on one server
(or two replicas of one service) never run the same migration twice.

A serving process never imports Alembic (about 10 MB it would hold for its whole life, for
work done once at start): it reads the head from the migration files itself and, only when
its database is behind, runs the migrations in a short-lived child process
(`ensure_at_head`). Tests, the `ticketing migrate` command and the benches migrate in-process
(`upgrade_to_head`).
"""

from __future__ import annotations

import ast
import asyncio
import os
import sys
import zlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing_common.db import normalize_url, redact_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_ROOT = Path(__file__).resolve().parent.parent / "migrations"
# How the child process of `ensure_at_head` gets its database URL: an environment variable,
# never an argument (another user's `ps` would show an argument, password and all).
URL_VARIABLE = "TICKETING_MIGRATE_URL"


def alembic_config(service: str, url: str) -> Config:
    from alembic.config import Config  # only where migrations run (see the module docstring)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_ROOT / service))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    config.attributes["advisory_lock_key"] = advisory_lock_key(service)
    return config


def advisory_lock_key(service: str) -> int:
    return zlib.crc32(f"ticketing-migrations:{service}".encode())


@cache
def head_revision(service: str) -> str:
    """The newest revision in `migrations/<service>/versions/`, read from the files.

    Each file names its `revision` and the `down_revision` it follows; the head is the one
    revision no other file follows. Alembic would find the same (a test checks), but
    importing it is what a serving process avoids.
    """
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in (MIGRATIONS_ROOT / service / "versions").glob("*.py"):
        declared = _declared(path)
        revisions.add(declared["revision"])
        if declared.get("down_revision"):
            followed.add(declared["down_revision"])
    heads = revisions - followed
    if len(heads) != 1:
        raise RuntimeError(f"{service} migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def _declared(path: Path) -> dict[str, str]:
    """The module-level string assignments of a migration file (revision, down_revision)."""
    names: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            names[target.id] = value.value
    return names


def _upgrade(service: str, url: str, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(service, url), revision)


def _downgrade(service: str, url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(service, url), revision)


async def upgrade_to_head(service: str, url: str) -> None:
    """Migrate in this process (tests, `ticketing migrate`, benches)."""
    # env.py runs its own event loop; a worker thread keeps it off ours.
    await asyncio.to_thread(_upgrade, service, url, "head")


async def downgrade_to(service: str, url: str, revision: str) -> None:
    await asyncio.to_thread(_downgrade, service, url, revision)


async def ensure_at_head(service: str, url: str, engine: AsyncEngine) -> bool:
    """Bring the database to the head without importing Alembic here; True if it migrated.

    At head already (every restart) this is one query. Behind, a child process
    (`python -m ticketing_common.migrate <service>`) migrates and this waits for it; its
    error output is raised if it fails. A cancelled start stops the child: each migration
    runs in one transaction, so a stopped one is rolled back whole.
    """
    if await current_revision(engine) == head_revision(service):
        return False
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ticketing_common.migrate",
        service,
        env={**os.environ, URL_VARIABLE: url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await child.communicate()
    except asyncio.CancelledError:
        child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        tail = errors.decode(errors="replace").strip().splitlines()[-5:]
        # The error goes to the log: a connection URL in it loses its password.
        raise RuntimeError(f"{service} migrations failed: " + redact_url(" | ".join(tail)))
    return True


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (a plain read: /readyz calls this often)."""
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        return await conn.scalar(text("SELECT version_num FROM alembic_version"))


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


def _main() -> None:
    """The child process of ensure_at_head: `python -m ticketing_common.migrate wm|be`."""
    service = sys.argv[1]
    _upgrade(service, os.environ[URL_VARIABLE], "head")


if __name__ == "__main__":
    _main()
