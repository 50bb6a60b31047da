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
import contextlib
import logging
import os
import sys
import traceback
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing_common.db import normalize_url, redact_url

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_ROOT = Path(__file__).resolve().parent.parent / "migrations"
# How the child process of `ensure_at_head` gets its database URL: an environment variable,
# never an argument (another user's `ps` would show an argument, password and all).
URL_VARIABLE = "TICKETING_MIGRATE_URL"
# The child's last line when it fails: the error in one line (a SQLAlchemy error's text
# starts with what went wrong, then quotes the statement over many lines).
_SUMMARY = "migration failed: "


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


@dataclass(frozen=True)
class History:
    """A service's migrations as their files declare them."""

    revisions: frozenset[str]
    head: str


@cache
def history(service: str) -> History:
    return read_history(MIGRATIONS_ROOT / service / "versions")


def head_revision(service: str) -> str:
    return history(service).head


def read_history(versions: Path) -> History:
    """The revisions in a versions folder and their head, read from the files.

    Each file names its `revision` and the `down_revision` it follows (a merge names
    several); the head is the one revision no other file follows. Alembic would find the
    same (a test checks), but importing it is what a serving process avoids.
    """
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        if path.name.startswith(("_", ".")):
            continue
        declared = _declared(path)
        revision, down = declared.get("revision"), declared.get("down_revision")
        if not isinstance(revision, str):
            raise RuntimeError(f"{path} declares no revision")
        revisions.add(revision)
        followed.update([down] if isinstance(down, str) else down or ())
    heads = revisions - followed
    if len(heads) != 1:
        raise RuntimeError(f"{versions} has {len(heads)} heads: {sorted(heads)}")
    return History(frozenset(revisions), heads.pop())


def _declared(path: Path) -> dict[str, Any]:
    """A migration file's module-level constants (revision, down_revision, ...)."""
    names: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and value is not None:
            with contextlib.suppress(ValueError, TypeError, SyntaxError, RecursionError):
                names[target.id] = ast.literal_eval(value)
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
    (`python -m ticketing_common.migrate <service>`) migrates and this waits for it; if it
    fails, its output is logged and its error raised. A database at a revision these files
    do not know (newer code migrated it) is refused before anything runs. A cancelled start
    kills the child: all pending migrations run in one transaction, so Postgres rolls the
    run back whole (and frees the advisory lock) once it sees the connection gone.
    """
    known = history(service)
    current = await current_revision(engine)
    if current == known.head:
        return False
    if current is not None and current not in known.revisions:
        raise RuntimeError(
            f"{service} database is at revision {current}, which this code does not know "
            f"(its head is {known.head}): newer code has migrated it"
        )
    log.info(
        "%s database at %s, code at %s: migrating", service, current or "no schema", known.head
    )
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
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        # Logged and raised: a connection URL in them loses its password.
        output = redact_url(errors.decode(errors="replace").strip())
        log.error("%s migrations failed; their output:\n%s", service, output)
        lines = output.splitlines()
        summary = next((line for line in reversed(lines) if line.startswith(_SUMMARY)), "")
        raise RuntimeError(
            f"{service} migrations failed: "
            + (summary.removeprefix(_SUMMARY) or " | ".join(lines[-5:]))
        )
    log.info("%s database migrated to %s", service, known.head)
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
    try:
        _upgrade(service, os.environ[URL_VARIABLE], "head")
    except Exception as exc:
        traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"{_SUMMARY}{type(exc).__name__}: {first_line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    _main()
