"""Concurrent pushes of one kind are serialised: the lifecycle never races."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from tests.wm.support import T0, entry, push, push_body, sample, tickets

MIN = timedelta(minutes=1)


async def test_concurrent_pushes_open_one_ticket(client: httpx.AsyncClient) -> None:
    """Two pushes racing for the same new problem open one ticket, the other updates it."""
    bodies = [
        push_body(entry("E1", sample(20.0, T0 - k * MIN)), aggregation_id=f"race-{k}")
        for k in range(1, 5)
    ]
    responses = await asyncio.gather(*(push(client, body) for body in bodies))
    assert [r.status_code for r in responses] == [200] * 4
    counts = [r.json()["tickets"] for r in responses]
    assert sum(c["opened"] for c in counts) == 1
    assert sum(c["updated"] for c in counts) == 3
    [ticket] = await tickets(client)
    assert ticket["revision"] == 4
