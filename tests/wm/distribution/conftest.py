"""Distribution fixtures: outbox rows written directly, stand-in BEs over real HTTP, a worker.

The outbox rows go through the real migrated schema (ticket → revision → delivery), the way
the WM core writes them, so the distribution is tested without depending on ingestion.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.support.servers import serve_in_thread
from ticketing_common.backoff import Backoff
from ticketing_common.db import create_engine, make_sessionmaker, session_scope
from wm_service.distribution import registry
from wm_service.distribution.schemas import BackendRegistration
from wm_service.distribution.worker import DistributionConfig, DistributionWorker
from wm_service.models import Ticket, TicketDelivery, TicketRevision

scope = contextlib.asynccontextmanager(session_scope)

KEYS = [f"snr-upstream:MTY01-CCAP02:US-{i}/0/1" for i in range(200)]


def make_config(**overrides: Any) -> DistributionConfig:
    """Quick polling and retries; health limits long enough that a busy machine never trips
    them by accident (the failover test shortens them)."""
    values: dict[str, Any] = {
        "batch_size": 50,
        "health": registry.Health(
            backend_timeout=timedelta(seconds=30), failover_after=timedelta(seconds=30)
        ),
        "poll_seconds": 0.05,
        "probe_interval_seconds": 0.2,
        "probe_timeout_seconds": 5.0,
        "concurrency": 2,
        "request_timeout_seconds": 5.0,
        "backoff": Backoff(base_seconds=0.1, cap_seconds=0.4),
    }
    values.update(overrides)
    return DistributionConfig(**values)


@pytest.fixture
async def sessionmaker(wm_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(wm_database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


class Outbox:
    """Writes ticket revisions with their outbox rows, and reads the rows back."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.tickets: dict[str, uuid.UUID] = {}
        self.revisions: dict[str, int] = {}

    async def add(self, keys: list[str]) -> None:
        """One new revision for each key (revision 1 opens its ticket), in one transaction."""
        now = datetime.now(UTC)
        async with scope(self.sessionmaker) as session:
            for key in keys:
                revision = self.revisions.get(key, 0) + 1
                self.revisions[key] = revision
                payload = {"dedup_key": key, "revision": revision}
                if revision == 1:
                    self.tickets[key] = uuid.uuid4()
                    session.add(
                        Ticket(
                            id=self.tickets[key],
                            kind="snr-upstream",
                            entity_id=key,
                            dedup_key=key,
                            open_key=key,
                            state="open",
                            category="SNR",
                            revision=1,
                            priority="P3",
                            payload=payload,
                            opened_at=now,
                            updated_at=now,
                        )
                    )
                    await session.flush()
                ticket_id = self.tickets[key]
                payload["ticket_id"] = str(ticket_id)
                row = TicketRevision(
                    ticket_id=ticket_id,
                    revision=revision,
                    action="open" if revision == 1 else "update",
                    priority="P3",
                    payload=payload,
                    created_at=now,
                )
                session.add(row)
                await session.flush()
                assert row.id is not None
                session.add(
                    TicketDelivery(
                        revision_id=row.id,
                        ticket_id=ticket_id,
                        dedup_key=key,
                        revision=revision,
                        created_at=now,
                    )
                )

    async def rows(self) -> list[TicketDelivery]:
        async with scope(self.sessionmaker) as session:
            result = await session.exec(select(TicketDelivery).order_by(col(TicketDelivery.id)))
            return list(result.all())

    async def wait_until(
        self, predicate: Callable[[list[TicketDelivery]], bool], *, seconds: float = 20
    ) -> list[TicketDelivery]:
        """Poll the outbox until `predicate(rows)` holds; fail after a bounded wait."""
        deadline = time.monotonic() + seconds
        while True:
            rows = await self.rows()
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"outbox never reached the expected state: {rows[:5]}")
            await asyncio.sleep(0.05)


def all_delivered(rows: list[TicketDelivery]) -> bool:
    return bool(rows) and all(r.status == "delivered" for r in rows)


@pytest.fixture
def outbox(sessionmaker: async_sessionmaker[AsyncSession]) -> Outbox:
    return Outbox(sessionmaker)


@dataclass
class StandInBE:
    """A BE's intake and /readyz as a tiny app: records every batch, fails on demand."""

    token: str = "intake-token"
    ready: bool = True
    fail_next: int = 0
    fail_status: int = 503
    down: bool = False
    latency: float = 0.0
    # (dedup_key, revision) the BE cannot validate: a batch holding one is refused whole with
    # a 422, as the BE's request validation does.
    reject: set[tuple[str, int]] = field(default_factory=set)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    # The ownership generation each batch came with (None: the WM sent none).
    generations: list[int | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/readyz")
        async def readyz() -> JSONResponse:
            ok = self.ready and not self.down
            return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

        @app.post("/api/v1/tickets")
        async def intake(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"error": "bad token"}, status_code=403)
            body = await request.json()
            tickets = body["tickets"]
            if self.latency:
                await asyncio.sleep(self.latency)
            with self.lock:
                self.batches.append(tickets)
                self.generations.append(body.get("generation"))
                if any((t["dedup_key"], t["revision"]) in self.reject for t in tickets):
                    return JSONResponse({"error": "invalid ticket"}, status_code=422)
                if self.down or self.fail_next > 0:
                    self.fail_next = max(self.fail_next - 1, 0)
                    return JSONResponse({"error": "unavailable"}, status_code=self.fail_status)
                self.accepted.extend(tickets)
            return JSONResponse({"accepted": len(tickets), "duplicates": 0})

        return app

    def received(self) -> list[tuple[str, int]]:
        """(dedup_key, revision) of every ticket acknowledged with a 2xx, in arrival order."""
        with self.lock:
            return [(t["dedup_key"], t["revision"]) for t in self.accepted]


@pytest.fixture
def stand_in() -> Iterator[Callable[..., StandInBE]]:
    """`stand_in(**knobs)` → a StandInBE served on 127.0.0.1 until the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**knobs: Any) -> StandInBE:
            backend = StandInBE(**knobs)
            backend.url = stack.enter_context(serve_in_thread(backend.app())).url
            return backend

        yield start


async def register(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    backend: StandInBE,
    *,
    heartbeat: bool = False,
    now: datetime | None = None,
) -> None:
    """Register a stand-in BE the way its PUT does: by hand (available while its /readyz
    answers, not fenced) or, with `heartbeat`, as the BE's own heartbeat (fenced: available
    only while it keeps heartbeating, see test_fencing.py)."""
    registration = BackendRegistration.model_validate(
        {"url": backend.url, "intake_token": SecretStr(backend.token)}
    )
    async with scope(sessionmaker) as session:
        await registry.register(
            session,
            name=name,
            registration=registration,
            now=now or datetime.now(UTC),
            heartbeat=heartbeat,
        )


@pytest.fixture
async def run_worker(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Callable[..., Awaitable[DistributionWorker]]]:
    """`await run_worker(**config)` → a started DistributionWorker, stopped after the test."""
    workers: list[DistributionWorker] = []

    async def start(**overrides: Any) -> DistributionWorker:
        worker = DistributionWorker(sessionmaker, make_config(**overrides))
        await worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await worker.stop()


StandIn = Callable[..., StandInBE]
RunWorker = Callable[..., Awaitable[DistributionWorker]]
Sessions = async_sessionmaker[AsyncSession]
