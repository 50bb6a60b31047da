"""Big pushes: answered once decided, their revisions written in chunks right after
(services/push_plan.py), each exactly once whatever stops when."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, decoded, entry, push, push_body, sample
from ticketing_common.db import StatisticsRefresher, create_engine, make_sessionmaker, session_scope
from wm_service.metrics import WMMetrics, refresh_stored_state
from wm_service.schemas import PushResult
from wm_service.services import push_plan
from wm_service.services.bulk import driver_connection
from wm_service.services.ingestion import BULK_TABLES, process_push
from wm_service.services.push_plan import PlanChunk, PushApplier

Sessions = async_sessionmaker[AsyncSession]
scope = contextlib.asynccontextmanager(session_scope)

CHUNK = 3
ENTITIES = [f"HUB01-CCAP01:US-{i}/0/0" for i in range(10)]
MIN = timedelta(minutes=1)


@pytest.fixture
async def sessions(wm_database_url: str) -> AsyncIterator[tuple[Sessions, StatisticsRefresher]]:
    engine = create_engine(wm_database_url)
    statistics = StatisticsRefresher(engine, BULK_TABLES, min_rows=500, min_interval=10.0)
    yield make_sessionmaker(engine), statistics
    await engine.dispose()


async def decide(
    sessionmaker: Sessions,
    *,
    at: datetime,
    chunk_size: int = CHUNK,
    value: float = 21.0,
    kind: str = "snr-upstream",
) -> PushResult:
    """A push of one critical sample per entity at `at - 1 min`, as the push route runs it
    (without an applier: what it stores stays stored, as after a crash)."""
    body = push_body(*(entry(e, sample(value, at - MIN)) for e in ENTITIES), at=at)
    checked = decoded(body)
    async with scope(sessionmaker) as session:
        result, _ = await process_push(
            session,
            kind=kind,
            push=checked,
            received_at=at,
            targets=[],
            chunk_size=chunk_size,
        )
    return result


_CHUNKS = "SELECT revisions FROM push_plan ORDER BY id"
_REVISIONS = """
    SELECT t.entity_id, r.revision,
           (SELECT count(*) FROM ticket_delivery d WHERE d.revision_id = r.id)
    FROM ticket t JOIN ticket_revision r ON r.ticket_id = t.id
    ORDER BY t.entity_id, r.revision
"""


async def stored_chunks(sessionmaker: Sessions) -> list[int]:
    async with scope(sessionmaker) as session:
        db = await driver_connection(session)
        return [row["revisions"] for row in await db.fetch(_CHUNKS)]


async def written(sessionmaker: Sessions) -> dict[str, list[tuple[int, int]]]:
    """Per entity: (revision, outbox rows of it) of every ticket revision written."""
    async with scope(sessionmaker) as session:
        rows = await (await driver_connection(session)).fetch(_REVISIONS)
    out: dict[str, list[tuple[int, int]]] = {}
    for entity_id, revision, deliveries in rows:
        out.setdefault(entity_id, []).append((revision, deliveries))
    return out


async def gauge_to_write(sessionmaker: Sessions) -> dict[tuple[str, ...], float]:
    """wm_push_revisions_to_write as a scrape would set it."""
    metrics = WMMetrics()
    async with scope(sessionmaker) as session:
        await refresh_stored_state(session, metrics)
    return {
        tuple(s.labels.values()): s.value
        for family in metrics.revisions_to_write.collect()
        for s in family.samples
    }


def applier(sessionmaker: Sessions, statistics: StatisticsRefresher) -> PushApplier:
    async def no_targets(session: AsyncSession) -> list[str]:
        return []

    return PushApplier(
        sessionmaker, targets=no_targets, written=lambda: None, statistics=statistics
    )


@pytest.mark.parametrize("app_overrides", [{"push_chunk_revisions": CHUNK}], indirect=True)
async def test_a_big_push_answers_with_final_counts_then_writes_every_revision(
    client: httpx.AsyncClient,
) -> None:
    body = push_body(*(entry(e, sample(21.0, T0 - MIN)) for e in ENTITIES))
    response = await push(client, body)
    assert response.status_code == 200, response.text
    answered = response.json()
    assert answered["tickets"]["opened"] == len(ENTITIES)
    assert answered["revisions_to_write"] == len(ENTITIES)

    async def listed() -> dict[str, Any]:
        page = await client.get("/api/v1/aggregations", headers=ADMIN)
        item: dict[str, Any] = page.json()["items"][0]
        return item

    deadline = time.monotonic() + 20
    while (await listed())["revisions_to_write"]:
        assert time.monotonic() < deadline, "the push's revisions were never all written"
        await asyncio.sleep(0.05)
    tickets = (await client.get("/api/v1/tickets?limit=100", headers=ADMIN)).json()["items"]
    assert sorted(t["entity_id"] for t in tickets) == sorted(ENTITIES)
    assert {t["revision"] for t in tickets} == {1}
    replay = await push(client, body)
    assert replay.headers.get("Idempotent-Replay") == "true"
    assert replay.json() == {**answered, "revisions_to_write": 0}


async def test_what_a_crash_left_stored_is_written_once_by_the_next_start(
    sessions: tuple[Sessions, StatisticsRefresher],
) -> None:
    sessionmaker, statistics = sessions
    result = await decide(sessionmaker, at=T0)
    assert result.tickets.opened == len(ENTITIES) == result.revisions_to_write
    assert await stored_chunks(sessionmaker) == [3, 3, 3, 1]
    assert await written(sessionmaker) == {}
    assert await gauge_to_write(sessionmaker) == {("snr-upstream",): 10.0}

    assert await applier(sessionmaker, statistics).apply_stored() == len(ENTITIES)
    assert await stored_chunks(sessionmaker) == []
    assert await gauge_to_write(sessionmaker) == {}
    assert await written(sessionmaker) == {e: [(1, 1)] for e in ENTITIES}
    assert await applier(sessionmaker, statistics).apply_stored() == 0
    assert await written(sessionmaker) == {e: [(1, 1)] for e in ENTITIES}


async def test_a_chunk_interrupted_while_written_is_written_whole_once_later(
    sessions: tuple[Sessions, StatisticsRefresher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away while the second chunk is written: the first stays written,
    the second is rolled back with its chunk still stored, and the next pass writes it."""
    sessionmaker, statistics = sessions
    await decide(sessionmaker, at=T0)
    real_write = push_plan.write
    calls = 0

    async def failing_second(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        await real_write(*args, **kwargs)
        if calls == 2:
            raise ConnectionError("database gone mid-chunk")

    monkeypatch.setattr(push_plan, "write", failing_second)
    assert await applier(sessionmaker, statistics).apply_stored() == 3
    assert await stored_chunks(sessionmaker) == [3, 3, 1]
    assert sum(len(v) for v in (await written(sessionmaker)).values()) == 3

    monkeypatch.setattr(push_plan, "write", real_write)
    assert await applier(sessionmaker, statistics).apply_stored() == len(ENTITIES) - 3
    assert await written(sessionmaker) == {e: [(1, 1)] for e in ENTITIES}


async def test_the_next_push_of_the_kind_writes_what_is_left_before_it_decides(
    sessions: tuple[Sessions, StatisticsRefresher],
) -> None:
    """Deciding on tickets not yet written would open every one a second time."""
    sessionmaker, _ = sessions
    await decide(sessionmaker, at=T0)
    later = await decide(sessionmaker, at=T0 + timedelta(minutes=15), chunk_size=1000, value=20.0)
    assert later.tickets.opened == 0
    assert later.tickets.updated == len(ENTITIES)
    assert later.revisions_to_write == 0
    assert await stored_chunks(sessionmaker) == []
    assert await written(sessionmaker) == {e: [(1, 1), (2, 1)] for e in ENTITIES}


async def test_a_kind_whose_chunks_keep_failing_holds_no_other_kind_back(
    sessions: tuple[Sessions, StatisticsRefresher], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessionmaker, statistics = sessions
    await decide(sessionmaker, at=T0)
    await decide(sessionmaker, at=T0, kind="ds-service-group", value=95.0)
    assert await stored_chunks(sessionmaker) == [3, 3, 3, 1] * 2
    real_write = push_plan.write

    async def failing_snr(session: AsyncSession, db: Any, chunk: PlanChunk, **kw: Any) -> None:
        if chunk.kind == "snr-upstream":
            raise RuntimeError("this kind's chunks cannot be written")
        await real_write(session, db, chunk, **kw)

    monkeypatch.setattr(push_plan, "write", failing_snr)
    assert await applier(sessionmaker, statistics).apply_stored() == len(ENTITIES)
    assert await stored_chunks(sessionmaker) == [3, 3, 3, 1]
