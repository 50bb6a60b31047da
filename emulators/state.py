"""The one in-memory state of an emulator app, and the wrapper every platform request runs in.

`create_app` builds a fresh `EmulatorState` per app, so several apps in one process (tests)
never share records, tokens or faults. `guarded` applies faults and counts requests.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from fastapi import Request
from fastapi.responses import Response

from emulators.cherwell_store import CherwellStore
from emulators.config import EmulatorSettings
from emulators.faults import FaultBoard, FaultDecision, Platform
from emulators.sfyc_store import SfycStore


class EmulatorState:
    """Records, tokens, faults and counters of both platforms, guarded by one asyncio lock."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.lock = asyncio.Lock()
        self.rng = random.Random(settings.seed)
        # Wall-clock seconds; tests replace it to make tokens expire without waiting.
        self.clock: Callable[[], float] = time.time
        self.faults = FaultBoard()
        self.requests: Counter[str] = Counter()
        self.cherwell = CherwellStore(self.rng)
        self.sfyc = SfycStore(self.rng, settings.sfyc_external_id_fields)

    def reset(self) -> None:
        """Forget all records, tokens, faults and counters (settings and clock stay)."""
        self.rng.seed(self.settings.seed)
        self.faults.clear()
        self.requests.clear()
        self.cherwell = CherwellStore(self.rng)
        self.sfyc = SfycStore(self.rng, self.settings.sfyc_external_id_fields)


def get_state(request: Request) -> EmulatorState:
    state = request.app.state.emulator
    assert isinstance(state, EmulatorState)
    return state


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer encoded with msgspec (the emulators must keep up with the benchmark)."""
    return Response(
        msgspec.json.encode(content),
        status_code=status_code,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


class BadJson(ValueError):
    """The body is not valid JSON."""


async def read_json(request: Request) -> Any:
    try:
        return msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise BadJson(str(exc)) from exc


Handler = Callable[[FaultDecision], Awaitable[Response]]
FailureRenderer = Callable[[int], Response]


async def guarded(
    request: Request,
    *,
    platform: Platform,
    route: str,
    handler: Handler,
    render_failure: FailureRenderer,
    is_token: bool = False,
) -> Response:
    """Count the request, then delay, fail, handle or lose it as the faults in force say.

    `route` is the stats key's route part (`"POST /CherwellAPI/token"`); `render_failure`
    builds the platform's own error body for an injected HTTP status.
    """
    state = get_state(request)
    async with state.lock:
        state.requests[f"{platform} {route}"] += 1
        decision = state.faults.decide(platform, request.url.path, is_token=is_token, rng=state.rng)
    if decision.latency_seconds:
        await asyncio.sleep(decision.latency_seconds)
    if decision.fail_status is not None:
        failed = render_failure(decision.fail_status)
        if decision.retry_after is not None:
            failed.headers["Retry-After"] = str(decision.retry_after)
        return failed
    response = await handler(decision)
    if decision.lose_response:
        # The work is done, but the client never learns it: a gateway timed out on the way back.
        return render_failure(504)
    return response
