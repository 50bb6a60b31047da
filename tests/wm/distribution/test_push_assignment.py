"""A push writes its outbox rows with their backend, by the distribution's own rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from tests.wm.distribution.conftest import Sessions, scope
from tests.wm.support import T0, entry, push_body, sample
from wm_service.distribution import rendezvous
from wm_service.distribution.assignment import Routing
from wm_service.models import TicketDelivery
from wm_service.services.ingestion import process_push
from wm_service.services.push_decode import decode_push

BOTH = Routing(keep=["be-1", "be-2"], targets=["be-1", "be-2"])


async def apply_push(
    sessionmaker: Sessions, entity_ids: list[str], *, at: datetime, routing: Routing | None
) -> None:
    """One push of critical samples for `entity_ids`, applied as the push route does."""
    body = push_body(
        *(entry(e, sample(21.0, at - timedelta(minutes=5))) for e in entity_ids), at=at
    )
    push = decode_push(
        json.dumps(body).encode(),
        media_type="application/json",
        aggregation_id=None,
        generated_at=None,
        now=datetime.now(UTC),
        skew=timedelta(minutes=5),
    )
    async with scope(sessionmaker) as session:
        await process_push(session, kind="snr-upstream", push=push, received_at=at, routing=routing)


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
    await apply_push(sessionmaker, entities, at=T0, routing=BOTH)
    rows = await backends_by_key(sessionmaker)
    winners = rendezvous.assign(rows, ["be-1", "be-2"])
    assert len(rows) == 40
    assert rows == {key: [winners[key]] for key in rows}
    # Both backends get a share (40 keys: a one-sided split is astronomically unlikely).
    assert set(winners.values()) == {"be-1", "be-2"}


async def test_a_key_stays_with_the_backend_holding_it(sessionmaker: Sessions) -> None:
    """A later revision follows its key's backend, even where a new key would go elsewhere."""
    entities = [f"HUB01-CCAP01:US-{i}/0/0" for i in range(10)]
    await apply_push(sessionmaker, entities, at=T0, routing=BOTH)
    only_be2 = Routing(keep=["be-1", "be-2"], targets=["be-2"])
    await apply_push(sessionmaker, entities, at=T0 + timedelta(minutes=15), routing=only_be2)
    rows = await backends_by_key(sessionmaker)
    assert all(len(names) == 2 and names[0] == names[1] for names in rows.values())
    assert {names[0] for names in rows.values()} == {"be-1", "be-2"}


async def test_a_failed_over_holder_loses_its_keys_to_the_targets(sessionmaker: Sessions) -> None:
    entities = [f"HUB01-CCAP01:US-{i}/0/0" for i in range(10)]
    await apply_push(sessionmaker, entities, at=T0, routing=BOTH)
    be1_failed_over = Routing(keep=["be-2"], targets=["be-2"])
    await apply_push(sessionmaker, entities, at=T0 + timedelta(minutes=15), routing=be1_failed_over)
    rows = await backends_by_key(sessionmaker)
    assert {names[1] for names in rows.values()} == {"be-2"}


async def test_rows_wait_unassigned_without_a_target_or_behind_unassigned_ones(
    sessionmaker: Sessions,
) -> None:
    """No backend available: the rows wait for the distribution. While they wait, a later
    push leaves its rows unassigned too (an older revision of the same key may be among the
    waiting ones, and the distribution assigns a key's revisions together)."""
    await apply_push(sessionmaker, ["HUB01-CCAP01:US-0/0/0"], at=T0, routing=Routing([], []))
    await apply_push(
        sessionmaker,
        ["HUB01-CCAP01:US-0/0/0", "HUB01-CCAP01:US-1/0/0"],
        at=T0 + timedelta(minutes=15),
        routing=BOTH,
    )
    rows = await backends_by_key(sessionmaker)
    assert sorted(rows.values()) == [[None], [None, None]]
