"""StatisticsRefresher: ANALYZE after a bulk write, not after small ones, not too often."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing_common.db import StatisticsRefresher, create_engine


async def _analyzed(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
        )
        return int(result.scalar_one())


async def test_a_bulk_write_refreshes_the_statistics_once_per_interval(
    be_database_url: str,
) -> None:
    engine = create_engine(be_database_url)
    try:
        refresher = StatisticsRefresher(
            engine, ("ticket_revision",), min_rows=100, min_interval=3600
        )
        assert not refresher.due(99)  # a small write leaves it to autovacuum
        assert refresher.due(100)
        assert not refresher.due(10_000)  # within the interval
        before = await _analyzed(engine, "ticket_revision")
        await refresher.refresh()
        assert await _analyzed(engine, "ticket_revision") == before + 1
    finally:
        await engine.dispose()
