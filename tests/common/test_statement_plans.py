"""Statements that change a batch of rows find each row by its key, whatever the statistics say.

Both tables are analysed before their rows get the value the statement checks (a worker's
claim, a delivery's backend), as happens in a run: a push, then its batches. Postgres then
puts that value at a row or two. Compared with one value, it planned the BE's record of a
batch as a scan of the table joined to the batch's arrays once per row found, and the WM's
report as a read of every delivery of the backend (docs/performance.md, item 41). Checked
on the plans at 20 000 rows, where both went wrong (EXPLAIN: nothing is run). At that size
a hash join over a scan of the revisions is a fair plan for the BE's 400 (linear, once per
statement); what must never come back is the arrays read once per row found.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from be_service.pipeline import store
from ticketing_common.array_text import bool_array, int_array, text_array
from ticketing_common.db import create_engine
from wm_service.distribution import reports

ROWS, BATCH = 20_000, 400


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(connection: AsyncConnection, statement: str, params: dict[str, Any]) -> list:
    """Every node of the statement's plan."""
    explained = await connection.execute(text("EXPLAIN (FORMAT JSON) " + statement), params)
    [[document]] = explained.all()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    return list(_nodes(plan))


async def test_a_be_records_a_batch_without_reading_its_arrays_once_per_row(
    be_database_url: str,
) -> None:
    engine = create_engine(be_database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    """
                    INSERT INTO ticket_revision (ticket_id, revision, dedup_key, action, kind,
                        category, priority, payload, status, step, retry_round, received_at,
                        updated_at, generated_at, platform_ids)
                    SELECT md5('r' || n)::uuid, 1, 'snr-upstream:E' || n, 'open',
                           'snr-upstream', 'SNR', 'P3', '{}'::jsonb, 'Received', 'check', 0,
                           now(), now(), now(), '{}'::jsonb
                    FROM generate_series(1, :rows) AS n
                    """
                ),
                {"rows": ROWS},
            )
            await connection.execute(text("ANALYZE ticket_revision"))
            claim = text(
                "UPDATE ticket_revision SET claimed_by = 'be1-w3' WHERE id IN "
                "(SELECT id FROM ticket_revision ORDER BY id LIMIT :n) RETURNING id"
            )
            ids = list((await connection.execute(claim, {"n": BATCH})).scalars())
            n = len(ids)
            nodes = await _plan(
                connection,
                str(store._UPDATE_REVISIONS),
                {
                    "ids": int_array(ids),
                    "steps": text_array(["done"] * n),
                    "statuses": text_array(["Completed"] * n),
                    "platform_ids": ["{}"] * n,
                    "errors": [None] * n,
                    "keep_claims": bool_array([False] * n),
                    "delays": [None] * n,
                    "stages": text_array(["completed"] * n),
                    "holders": text_array(["be1-w3"] * n),
                    "error_max": 100,
                },
            )
    finally:
        await engine.dispose()
    updates = [node for node in nodes if node.get("Relation Name") == "ticket_revision"]
    assert updates, "the statement updates ticket_revision"
    rescanned = [
        node
        for node in nodes
        if node["Node Type"] == "Nested Loop" and node["Plans"][1]["Node Type"] == "Function Scan"
    ]
    assert rescanned == []


async def test_the_wm_finds_each_delivery_a_report_names_by_its_key(wm_database_url: str) -> None:
    engine = create_engine(wm_database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    """
                    INSERT INTO ticket_delivery (revision_id, ticket_id, dedup_key, revision,
                                                 status, created_at)
                    SELECT n, md5('d' || n)::uuid, 'snr-upstream:E' || n, 1, 'pending', now()
                    FROM generate_series(1, :rows) AS n
                    """
                ),
                {"rows": ROWS},
            )
            await connection.execute(text("ANALYZE ticket_delivery"))
            await connection.execute(
                text(
                    "UPDATE ticket_delivery "
                    "SET backend_name = CASE WHEN id % 2 = 0 THEN 'be1' ELSE 'be2' END"
                )
            )
            b = BATCH // 2
            nodes = await _plan(
                connection,
                str(reports._APPLY),
                {
                    "ticket_ids": [uuid.uuid4() for _ in range(b)],
                    "revisions": int_array([1] * b),
                    "seqs": int_array([1] * b),
                    "stages": text_array(["completed"] * b),
                    "generations": int_array([None] * b),
                    "incident_public_ids": text_array([None] * b),
                    "incident_rec_ids": text_array([None] * b),
                    "work_order_ids": text_array([None] * b),
                    "work_order_numbers": text_array([None] * b),
                    "operations": text_array(["link"] * b),
                    "errors": [None] * b,
                    "ats": [None] * b,
                    "backends": text_array(["be1"] * b),
                },
            )
    finally:
        await engine.dispose()
    reads = {
        (node["Node Type"], node.get("Index Name"))
        for node in nodes
        if node.get("Relation Name") == "ticket_delivery" and node["Node Type"] != "ModifyTable"
    }
    assert reads == {("Index Scan", "uq_ticket_delivery_ticket_id")}
