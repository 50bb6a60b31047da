"""A push writes its outbox rows with their backend, by the distribution's own rule, and
leaves to the distribution every key it cannot place safely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from tests.wm.distribution.conftest import Sessions, scope
from tests.wm.support import T0, decoded, entry, push_body, sample
from wm_service.distribution import registry, rendezvous
from wm_service.distribution.schemas import BackendRegistration
from wm_service.models import TicketDelivery
from wm_service.services.ingestion import process_push

BOTH = ["be-1", "be-2"]


@pytest.fixture(autouse=True)
async def registered(sessionmaker: Sessions) -> None:
    """be-1 and be-2 registered (which of them is available is each test's `targets`)."""
    for name in BOTH:
        registration = BackendRegistration.model_validate(
            {"url": f"http://{name}.test", "intake_token": SecretStr("t")}
        )
        async with scope(sessionmaker) as session:
            await registry.register(
                session,
                name=name,
                registration=registration,
                now=datetime.now(UTC),
                heartbeat=False,
            )


async def apply_push(
    sessionmaker: Sessions, entity_ids: list[str], *, at: datetime, targets: list[str]
) -> None:
    """One push of critical samples for `entity_ids`, applied as the push route does."""
    body = push_body(
        *(entry(e, sample(21.0, at - timedelta(minutes=5))) for e in entity_ids), at=at
    )
    push = decoded(body)
    async with scope(sessionmaker) as session:
        await process_push(session, kind="snr-upstream", push=push, received_at=at, targets=targets)


async def backends_by_key(sessionmaker: Sessions) -> dict[str, list[str | None]]:
    """Each key's rows' backends, oldest revision first."""
    async with scope(sessionmaker) as session:
        rows = (
            await session.exec(
                select(TicketDelivery.dedup_key, TicketDelivery.backend_name).order_by(
                    col(TicketDelivery.id)
                )
            )
        ).all()
    out: dict[str, list[str | None]] = {}
    for key, name in rows:
        out.setdefault(key, []).append(name)
    return out


async def test_new_keys_go_to_their_rendezvous_winner(sessionmaker: Sessions) -> None:
    entities = [f"HUB01-CCAP01:US-{i}/0/0" for i in range(40)]
    await apply_push(sessionmaker, entities, at=T0, targets=BOTH)
    rows = await backends_by_key(sessionmaker)
    winners = rendezvous.assign(rows, BOTH)
    assert len(rows) == 40
    assert rows == {key: [winners[key]] for key in rows}
    # Both backends get a share (40 keys: a one-sided split is astronomically unlikely).
    assert set(winners.values()) == set(BOTH)


async def test_a_key_stays_with_its_backend_while_that_one_is_available(
    sessionmaker: Sessions,
) -> None:
    entities = [f"HUB01-CCAP01:US-{i}/0/0" for i in range(10)]
    await apply_push(sessionmaker, entities, at=T0, targets=BOTH)
    await apply_push(sessionmaker, entities, at=T0 + timedelta(minutes=15), targets=BOTH)
    rows = await backends_by_key(sessionmaker)
    assert all(len(names) == 2 and names[0] == names[1] for names in rows.values())
    assert {names[0] for names in rows.values()} == set(BOTH)


async def test_a_key_whose_backend_is_unavailable_is_left_to_the_distribution(
    sessionmaker: Sessions,
) -> None:
    """be-1 silent: its keys are not moved by the push (the distribution knows whether be-1
    is being fenced or is back), while new keys and be-2's keys are placed at once."""
    entities = [f"HUB01-CCAP01:US-{i}/0/0" for i in range(10)]
    await apply_push(sessionmaker, entities, at=T0, targets=BOTH)
    later = [*entities, "HUB01-CCAP01:US-NEW/0/0"]
    await apply_push(sessionmaker, later, at=T0 + timedelta(minutes=15), targets=["be-2"])
    rows = await backends_by_key(sessionmaker)
    for key, names in rows.items():
        if key.endswith("US-NEW/0/0"):
            assert names == ["be-2"]
        else:
            assert names[1] == (None if names[0] == "be-1" else "be-2"), key


async def test_a_backend_removed_before_the_push_gets_no_rows(sessionmaker: Sessions) -> None:
    """Listed as available, but gone by the time the push writes: its keys wait unassigned."""
    async with scope(sessionmaker) as session:
        await registry.delete(
            session,
            name="be-1",
            now=datetime.now(UTC),
            health=registry.Health(
                backend_timeout=timedelta(seconds=30), failover_after=timedelta(seconds=60)
            ),
        )
    entities = [f"HUB01-CCAP01:US-{i}/0/0" for i in range(20)]
    await apply_push(sessionmaker, entities, at=T0, targets=BOTH)
    rows = await backends_by_key(sessionmaker)
    winners = rendezvous.assign(rows, BOTH)
    assert rows == {key: [None if winners[key] == "be-1" else "be-2"] for key in rows}


async def test_rows_wait_unassigned_without_a_target_or_behind_unassigned_ones(
    sessionmaker: Sessions,
) -> None:
    """No backend available: the rows wait for the distribution. While they wait, a later
    push leaves its rows unassigned too (an older revision of the same key may be among the
    waiting ones, and the distribution assigns a key's revisions together)."""
    await apply_push(sessionmaker, ["HUB01-CCAP01:US-0/0/0"], at=T0, targets=[])
    await apply_push(
        sessionmaker,
        ["HUB01-CCAP01:US-0/0/0", "HUB01-CCAP01:US-1/0/0"],
        at=T0 + timedelta(minutes=15),
        targets=BOTH,
    )
    rows = await backends_by_key(sessionmaker)
    assert sorted(rows.values(), key=len) == [[None], [None, None]]
