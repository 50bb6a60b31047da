"""Waiting for an event with a time limit, the way every worker loop pauses between passes.

`asyncio.wait_for` on Python 3.11 can lose a cancellation that arrives just as its timeout
fires: it raises TimeoutError instead, which the loops suppress, so a worker being stopped
ran on and its stop() waited forever (seen as a test teardown that never ended).
`asyncio.timeout` tells its own cancellation from one sent by somebody else.
"""

from __future__ import annotations

import asyncio


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; whether it was set. A cancellation of
    the waiting task always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
