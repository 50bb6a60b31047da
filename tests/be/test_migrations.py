"""BE data migrations: be_0002 moves the four platform-id columns into platform_ids and back."""

from __future__ import annotations

import json
import uuid

import asyncpg

from tests.conftest import DatabaseFactory
from ticketing_common.db import asyncpg_dsn
from ticketing_common.migrate import downgrade_to, upgrade_to_head

_INSERT_OLD = """
INSERT INTO ticket_revision
    (ticket_id, revision, dedup_key, action, kind, category, priority, payload, status, step,
     retry_round, received_at, updated_at, cherwell_rec_id, cherwell_public_id, sfyc_id,
     sfyc_work_order_number)
VALUES ($1, $2, 'k', 'open', 'snr-upstream', 'SNR', 'P2', '{}', $3, $4, 0, now(), now(),
        $5, $6, $7, $8)
"""

# (revision, status, step, cherwell rec/public id, sfyc id/number) → platform_ids
_ROWS = [
    ((1, "Received", "check", None, None, None, None), {}),
    (
        (2, "Received", "note", "r2", "P2", None, None),
        {"cherwell": {"rec_id": "r2", "public_id": "P2", "existing": True}},
    ),
    (
        (3, "Error", "workorder", "r3", "P3", None, None),
        {"cherwell": {"rec_id": "r3", "public_id": "P3"}},
    ),
    (
        (4, "Completed", "done", "r4", "P4", "s4", "WO-4"),
        {"cherwell": {"rec_id": "r4", "public_id": "P4"}, "sfyc": {"id": "s4", "number": "WO-4"}},
    ),
    (
        (5, "Completed", "done", "r5", "P5", None, None),
        {"cherwell": {"rec_id": "r5", "public_id": "P5", "existing": True}},
    ),
]


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def test_platform_ids_move_to_one_column_and_back(database_factory: DatabaseFactory):
    """Upgrade folds the four columns into platform_ids; downgrade restores them unchanged."""
    url = database_factory.empty()
    try:
        await upgrade_to_head("be", url)
        await downgrade_to("be", url, "be_0001")
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            ticket_id = uuid.uuid4()
            for (revision, status, step, *ids), _ in _ROWS:
                await conn.execute(_INSERT_OLD, ticket_id, revision, status, step, *ids)
        finally:
            await conn.close()
        await upgrade_to_head("be", url)
        moved = await _fetch(url, "SELECT platform_ids FROM ticket_revision ORDER BY revision")
        await downgrade_to("be", url, "be_0001")
        back = await _fetch(
            url,
            "SELECT cherwell_rec_id, cherwell_public_id, sfyc_id, sfyc_work_order_number "
            "FROM ticket_revision ORDER BY revision",
        )
    finally:
        database_factory.drop(url)
    assert [json.loads(row["platform_ids"]) for row in moved] == [ids for _, ids in _ROWS]
    assert [tuple(row) for row in back] == [tuple(values[3:]) for values, _ in _ROWS]


async def test_generated_at_is_filled_from_the_stored_documents(database_factory: DatabaseFactory):
    """be_0005 gives every revision its document's generated_at (received_at without one)."""
    url = database_factory.empty()
    try:
        await upgrade_to_head("be", url)
        await downgrade_to("be", url, "be_0004")
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            insert = (
                "INSERT INTO ticket_revision (ticket_id, revision, dedup_key, action, kind, "
                "category, priority, payload, status, step, retry_round, received_at, "
                "updated_at) VALUES ($1, $2, 'k', 'open', 'snr-upstream', 'SNR', 'P2', $3, "
                "'Completed', 'done', 0, '2026-11-30T10:00:00Z', now())"
            )
            with_time = json.dumps({"generated_at": "2026-11-01T08:00:00+00:00"})
            await conn.execute(insert, uuid.uuid4(), 1, with_time)
            await conn.execute(insert, uuid.uuid4(), 1, "{}")
        finally:
            await conn.close()
        await upgrade_to_head("be", url)
        rows = await _fetch(url, "SELECT generated_at FROM ticket_revision ORDER BY id")
    finally:
        database_factory.drop(url)
    assert [row["generated_at"].isoformat() for row in rows] == [
        "2026-11-01T08:00:00+00:00",
        "2026-11-30T10:00:00+00:00",
    ]
