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
        assert not await refresher.due(99)  # a small write leaves it to autovacuum
        assert await refresher.due(1)  # with the one before: min_rows written
        assert not await refresher.due(10_000)  # within the interval
        before = await _analyzed(engine, "ticket_revision")
        await refresher.refresh()
        assert await _analyzed(engine, "ticket_revision") == before + 1
    finally:
        await engine.dispose()


async def test_writes_add_up_to_a_tenth_of_the_smallest_table_as_postgres_counts_it(
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
        assert await refresher.due(100)  # tables never counted: min_rows is enough
        await refresher.refresh()
        assert (await _rows(engine, "small_table"), await _rows(engine, "big_table")) == (
            2_000,
            10_000,
        )
        # A tenth of the smaller table (2 000), not of the bigger one; writes add up.
        assert not await refresher.due(150)
        assert await refresher.due(50)
        # Retention shrinks the small table, and autovacuum counts it again: judged by the
        # 500 rows it has now (a tenth: 50), not by the 2 000 of the last refresh.
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM small_table WHERE n > 500"))
            await connection.execute(text("ANALYZE small_table"))
        assert await refresher.due(100)
    finally:
        await engine.dispose()
