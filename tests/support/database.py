"""Database faults for tests of either service, on the real Postgres of the test."""

from __future__ import annotations

import socket

import asyncpg

from ticketing_common.db import asyncpg_dsn


def refused_database_url() -> str:
    """A database URL on a loopback port nothing listens on: every connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+asyncpg://wm@127.0.0.1:{port}/wm"


async def reject_commits(database_url: str, table: str) -> None:
    """Make every transaction that wrote to `table` fail at COMMIT (a deferred constraint
    trigger), the way a real deferred constraint or a database lost at commit time does."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            f"""
            CREATE OR REPLACE FUNCTION reject_at_commit() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'rejected at commit'; END $$;
            CREATE CONSTRAINT TRIGGER reject_at_commit AFTER INSERT OR UPDATE ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION reject_at_commit();
            """
        )
    finally:
        await conn.close()
