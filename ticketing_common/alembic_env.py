"""The body every service's Alembic env.py shares: async engine, advisory lock, compare_type."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ticketing_common.db import normalize_url


def run(target_metadata: MetaData, version_table: str) -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or context.get_x_argument(
        as_dictionary=True
    ).get("url")
    if not url:
        raise SystemExit("give the database URL: alembic -n <service> -x url=postgresql://...")
    url = normalize_url(url)
    lock_key = config.attributes.get("advisory_lock_key")

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            version_table=version_table,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            if lock_key is not None:
                # Serialises concurrent starters; released at transaction end.
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            literal_binds=True,
            version_table=version_table,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())
