"""Both services' migrations: reversible, and in step with the models (no autogenerate drift)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import SERVICES, DatabaseFactory
from ticketing_common.migrate import downgrade_to, head_revision, upgrade_to_head


def _metadata(service: str) -> MetaData:
    if service == "wm":
        import wm_service.distribution.models  # noqa: F401  (the registry tables)
        from wm_service.models import WMModel

        return WMModel.metadata
    from be_service.models import BEModel

    return BEModel.metadata


async def _tables_and_diff(url: str, metadata: MetaData) -> tuple[set[str], list[object]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()
    return tables, diff


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrade_downgrade_upgrade_round_trip(
    service: str, database_factory: DatabaseFactory
) -> None:
    """upgrade head → downgrade base → upgrade head leaves the full schema in place."""
    url = database_factory.empty()
    try:
        await upgrade_to_head(service, url)
        tables_first, _ = await _tables_and_diff(url, _metadata(service))
        await downgrade_to(service, url, "base")
        tables_after_down, _ = await _tables_and_diff(url, _metadata(service))
        await upgrade_to_head(service, url)
        tables_again, _ = await _tables_and_diff(url, _metadata(service))
    finally:
        database_factory.drop(url)
    assert tables_after_down <= {"alembic_version"}
    assert tables_first == tables_again
    assert set(_metadata(service).tables) <= tables_first


@pytest.mark.parametrize("service", SERVICES)
async def test_models_and_migrations_do_not_drift(
    service: str, database_factory: DatabaseFactory
) -> None:
    """Autogenerate against a migrated database finds nothing to change."""
    url = database_factory.migrated(service)
    try:
        _, diff = await _tables_and_diff(url, _metadata(service))
    finally:
        database_factory.drop(url)
    assert diff == []


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_single_migration_head(service: str) -> None:
    """One linear history per service: a second head would make `upgrade head` ambiguous."""
    assert head_revision(service) is not None
