"""Both services' migrations: reversible, in step with the models (no autogenerate drift),
and run by a serving process without importing Alembic into it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import SERVICES, DatabaseFactory
from ticketing_common.db import asyncpg_dsn, create_engine
from ticketing_common.migrate import (
    alembic_config,
    current_revision,
    downgrade_to,
    ensure_at_head,
    head_revision,
    read_history,
    upgrade_to_head,
)


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
def test_the_head_read_from_the_migration_files_is_alembics(service: str) -> None:
    """One linear history per service (a second head would make `upgrade head` ambiguous),
    and the files' own reading of its head agrees with Alembic's."""
    script = ScriptDirectory.from_config(alembic_config(service, "postgresql://unused/x"))
    assert script.get_heads() == [head_revision(service)]


_SERVING_PROCESS = """
import asyncio, os, sys
from ticketing_common.db import create_engine
from ticketing_common.migrate import current_revision, ensure_at_head

async def main(service, url):
    engine = create_engine(url)
    try:
        migrated = await ensure_at_head(service, url, engine)
        again = await ensure_at_head(service, url, engine)
        print(migrated, again, await current_revision(engine), "alembic" in sys.modules)
    finally:
        await engine.dispose()

asyncio.run(main(sys.argv[1], os.environ["TEST_DATABASE_URL"]))
"""


@pytest.mark.parametrize("service", SERVICES)
def test_a_serving_process_migrates_in_a_child_and_never_imports_alembic(
    service: str, database_factory: DatabaseFactory
) -> None:
    """An empty database is brought to head by a child process; the next start finds it at
    head and runs nothing; Alembic's modules never enter the serving process."""
    url = database_factory.empty()
    try:
        finished = subprocess.run(
            [sys.executable, "-c", _SERVING_PROCESS, service],
            env={**os.environ, "TEST_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        database_factory.drop(url)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["True", "False", head_revision(service), "False"]


async def test_a_failing_migration_stops_the_start_with_its_error_and_changes_nothing(
    database_factory: DatabaseFactory,
) -> None:
    url = database_factory.empty()
    # The WM's first migration creates this table: here it exists already, so it fails.
    connection = await asyncpg.connect(asyncpg_dsn(url))
    await connection.execute("CREATE TABLE aggregation_push (squatter int)")
    await connection.close()
    engine = create_engine(url)
    try:
        with pytest.raises(RuntimeError) as failed:
            await ensure_at_head("wm", url, engine)
        assert await current_revision(engine) is None
    finally:
        await engine.dispose()
        database_factory.drop(url)
    # The error itself, in one line (not the tail of the statement SQLAlchemy quotes).
    assert str(failed.value).startswith("wm migrations failed: ProgrammingError: ")
    assert 'relation "aggregation_push" already exists' in str(failed.value)


async def test_a_database_ahead_of_the_code_is_refused_before_anything_runs(
    database_factory: DatabaseFactory,
) -> None:
    url = database_factory.migrated("wm")
    connection = await asyncpg.connect(asyncpg_dsn(url))
    await connection.execute("UPDATE alembic_version SET version_num = 'wm_9999'")
    await connection.close()
    engine = create_engine(url)
    try:
        with pytest.raises(RuntimeError, match="at revision wm_9999, which this code does not"):
            await ensure_at_head("wm", url, engine)
        assert await current_revision(engine) == "wm_9999"
    finally:
        await engine.dispose()
        database_factory.drop(url)


def _migration(folder: Path, name: str, revision: str, down: str) -> None:
    (folder / name).write_text(f"revision = {revision!r}\ndown_revision = {down}\n")


def test_the_files_reading_follows_merges_and_skips_what_is_not_a_migration(
    tmp_path: Path,
) -> None:
    _migration(tmp_path, "a.py", "a", "None")
    _migration(tmp_path, "b.py", "b", "'a'")
    _migration(tmp_path, "c.py", "c", "'a'")
    _migration(tmp_path, "merge.py", "m", "('b', 'c')")
    (tmp_path / "__init__.py").write_text("")
    history = read_history(tmp_path)
    assert history.head == "m"
    assert history.revisions == {"a", "b", "c", "m"}
    (tmp_path / "broken.py").write_text("down_revision = 'm'\n")
    with pytest.raises(RuntimeError, match=r"broken\.py declares no revision"):
        read_history(tmp_path)
    (tmp_path / "broken.py").unlink()
    _migration(tmp_path, "d.py", "d", "'a'")
    with pytest.raises(RuntimeError, match=r"2 heads: \['d', 'm'\]"):
        read_history(tmp_path)
