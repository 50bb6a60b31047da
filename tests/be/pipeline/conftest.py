"""In-process fixtures for the pipeline tests: no servers, no threads, no polling.

`platforms` is the BE's step list built on the emulator app behind httpx.ASGITransport;
`pipeline` runs it on the test's migrated database one batch at a time (work_once).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.config import BESettings
from be_service.pipeline.fence import Fence
from be_service.pipeline.sender import SenderContext
from be_service.pipeline.steps import Item, Step
from be_service.pipeline.worker import work_once
from be_service.platforms.registry import PLATFORMS, build_steps
from be_service.schemas import TicketDetail
from be_service.services import intake as intake_service
from be_service.services import settings as settings_service
from be_service.services import tickets as tickets_service
from emulators.app import create_app as create_emulator_app
from emulators.config import EmulatorSettings
from tests.be.conftest import make_ticket
from ticketing_common.backoff import Backoff
from ticketing_common.contract import TicketDocument
from ticketing_common.db import create_engine, make_sessionmaker, session_scope

EMULATOR_URL = "http://emulator"


@dataclass
class InProcessPlatforms:
    """The emulator app, an async client to it, and the BE's step list built on that client."""

    app: FastAPI
    http: httpx.AsyncClient
    settings: BESettings
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    async def faults(self, **spec: Any) -> None:
        response = await self.http.post("/_emulator/faults", json=spec)
        assert response.status_code == 200, response.text

    async def requests(self, fragment: str) -> int:
        """Requests so far to endpoints whose key contains `fragment`."""
        counts = (await self.http.get("/_emulator/stats")).json()["requests"]
        return sum(n for key, n in counts.items() if fragment in key)

    async def records(self, kind: str) -> list[dict[str, Any]]:
        return list((await self.http.get(f"/_emulator/records/{kind}")).json())


@pytest.fixture
async def platforms() -> AsyncIterator[InProcessPlatforms]:
    app = create_emulator_app(EmulatorSettings(seed=5))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=EMULATOR_URL) as http:
        settings = BESettings(
            cherwell_url=f"{EMULATOR_URL}/CherwellAPI", sfyc_url=f"{EMULATOR_URL}/services"
        )
        steps = build_steps(settings, {name: http for name in PLATFORMS})
        yield InProcessPlatforms(app, http, settings, steps)


def item(
    ticket: dict[str, Any] | None = None, *, revision_id: int = 1, step: str = "check", **ids: Any
) -> Item:
    """A claimed revision of `ticket` (a new one by default) waiting at `step`, with `ids`."""
    ticket = ticket or make_ticket()
    return Item(
        id=revision_id,
        ticket_id=uuid.UUID(ticket["ticket_id"]),
        revision=ticket["revision"],
        action=ticket["action"],
        step=step,
        dedup_key=ticket["dedup_key"],
        priority=ticket["priority"],
        kind=ticket["kind"],
        category=ticket["category"],
        title=ticket["title"],
        description=ticket["description"],
        work_order_subject=ticket["work_order"]["subject"],
        work_order_description=ticket["work_order"]["description"],
        ids=ids,
    )


@dataclass
class InProcessPipeline:
    """A BE's pipeline without its app: intake, then one batch at a time by `work_once`."""

    sessionmaker: async_sessionmaker[AsyncSession]
    platforms: InProcessPlatforms
    # The WM's lease and generation as the heartbeat left them (disabled: not fenced).
    fence: Fence = field(default_factory=lambda: Fence(enabled=False))

    def context(self, steps: tuple[Step, ...] | None = None) -> SenderContext:
        return SenderContext(
            sessionmaker=self.sessionmaker,
            steps=steps or self.platforms.steps,
            backoff=Backoff(base_seconds=0, cap_seconds=0),
            lease_seconds=30,
            ambiguous_create_delay_seconds=0,
            fence=self.fence,
        )

    async def intake(self, *tickets: dict[str, Any], generation: int | None = None) -> None:
        documents = [TicketDocument.model_validate(t) for t in tickets]
        async for session in session_scope(self.sessionmaker):
            await intake_service.create(session, tickets=documents, generation=generation)

    async def drain(self, steps: tuple[Step, ...] | None = None) -> int:
        """Send batches until none is left to claim; returns how many were sent."""
        ctx, batches = self.context(steps), 0
        while await work_once(ctx, worker="test-worker"):
            batches += 1
        return batches

    async def ticket(self, ticket_id: str) -> TicketDetail:
        async for session in session_scope(self.sessionmaker):
            return await tickets_service.get(session, ticket_id=uuid.UUID(ticket_id))
        raise AssertionError("unreachable")

    async def retry(self, ticket_id: str) -> None:
        async for session in session_scope(self.sessionmaker):
            await tickets_service.retry(session, ticket_id=uuid.UUID(ticket_id))


@pytest.fixture
async def pipeline(
    be_database_url: str, platforms: InProcessPlatforms
) -> AsyncIterator[InProcessPipeline]:
    """The pipeline on this test's database and the in-process emulator; max_retries 0."""
    engine = create_engine(be_database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    async for session in session_scope(sessionmaker):
        await settings_service.ensure(
            session, seed=platforms.settings.model_copy(update={"max_retries": 0})
        )
    try:
        yield InProcessPipeline(sessionmaker, platforms)
    finally:
        await engine.dispose()
