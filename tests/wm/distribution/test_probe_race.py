"""A probe round racing a backend DELETE: the deleted backend's outcome is dropped quietly and
the round's other outcomes are stored (it used to fail the round with a StaleDataError)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.wm.distribution.conftest import scope
from wm_service.distribution import registry
from wm_service.distribution.models import Backend
from wm_service.distribution.schemas import BackendRegistration

HEALTH = registry.Health(backend_timeout=timedelta(seconds=30), failover_after=timedelta(0))


async def _register(sessionmaker: async_sessionmaker[AsyncSession], name: str) -> None:
    registration = BackendRegistration(
        url="http://127.0.0.1:9",  # type: ignore[arg-type]
        intake_token=SecretStr("t"),
    )
    async with scope(sessionmaker) as session:
        await registry.register(
            session, name=name, registration=registration, now=_now(), heartbeat=True
        )


def _now() -> datetime:
    return datetime.now(UTC)


async def test_probe_of_a_deleted_backend_is_a_no_op(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The probe round holds a backend that a DELETE removes meanwhile: the round commits."""
    for name in ("be-gone", "be-kept"):
        await _register(sessionmaker, name)
    operator_deleted = asyncio.Event()
    release = asyncio.Event()

    async def operator() -> None:
        async with scope(sessionmaker) as session:
            await registry.delete(session, name="be-gone", now=_now(), health=HEALTH)
            operator_deleted.set()
            await release.wait()

    async def probe_round() -> None:
        await operator_deleted.wait()
        async with scope(sessionmaker) as session:
            # The row is still visible (the DELETE has not committed); the update then waits
            # for the DELETE's row lock and finds the row gone.
            for name in ("be-gone", "be-kept"):
                await registry.record_probe(session, name=name, ok=True, error=None, now=_now())

    deleting = asyncio.create_task(operator())
    probing = asyncio.create_task(probe_round())
    await operator_deleted.wait()
    await asyncio.sleep(0.3)  # the probe's UPDATE is now waiting for the DELETE's lock
    release.set()
    await asyncio.gather(deleting, probing)
    async with scope(sessionmaker) as session:
        kept = await session.get(Backend, "be-kept")
        assert await session.get(Backend, "be-gone") is None
    assert kept is not None and kept.last_probe_ok_at is not None
