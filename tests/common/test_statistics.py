"""StatisticsRefresher: ANALYZE after a bulk write, not after small ones, not too often, and
once the tables were refreshed only after a write of a tenth of the smallest one's rows."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing_common.db import StatisticsRefresher, create_engine


async def _of_table(engine: AsyncEngine, query: str, table: str) -> float:
    async with engine.connect() as connection:
        result = await connection.execute(text(query), {"t": table})
        return float(result.scalar_one())


async def _analyzed(engine: AsyncEngine, table: str) -> float:
    query = "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t"
    return await _of_table(engine, query, table)


async def _rows(engine: AsyncEngine, table: str) -> float:
    """The table's rows as its last ANALYZE estimated them (-1: never analysed)."""
    return await _of_table(engine, "SELECT reltuples FROM pg_class WHERE relname = :t", table)


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


async def test_after_a_refresh_only_a_tenth_of_the_smallest_table_calls_for_another(
    be_database_url: str,
) -> None:
    engine = create_engine(be_database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            for table, rows in (("small_table", 2_000), ("big_table", 10_000)):
                await connection.execute(text(f"CREATE TABLE {table} (n integer)"))
                await connection.execute(
                    text(f"INSERT INTO {table} SELECT generate_series(1, {rows})")
                )
        refresher = StatisticsRefresher(
            engine, ("small_table", "big_table"), min_rows=100, min_interval=0.0
        )
        assert await _rows(engine, "small_table") == -1
        assert refresher.due(100)  # never refreshed since the start: any bulk write
        await refresher.refresh()
        assert (await _rows(engine, "small_table"), await _rows(engine, "big_table")) == (
            2_000,
            10_000,
        )
        # A tenth of the smaller table (2 000), not of the bigger one.
        assert not refresher.due(199)
        assert refresher.due(200)
    finally:
        await engine.dispose()
