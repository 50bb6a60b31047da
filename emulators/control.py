"""Control API of the emulators (`/_emulator/...`, docs/contracts.md §6): faults, stats, reset.

Tests, benchmarks and operators use it to make the platforms misbehave and to read what the
BE stored on them; it is ours, so it answers in the shared error shape of ticketing_common.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from emulators.cherwell_store import INCIDENT_BUS_OB_ID, JOURNAL_BUS_OB_ID
from emulators.faults import FaultSpec
from emulators.state import get_state

router = APIRouter(prefix="/_emulator", tags=["Emulator control"])

RecordKind = Literal["incident", "journal", "workorder"]


@router.post("/faults", summary="Set the faults of one platform or both")
async def set_faults(request: Request, spec: FaultSpec) -> dict[str, Any]:
    state = get_state(request)
    async with state.lock:
        state.faults.install(spec)
        return state.faults.describe()


@router.get("/faults", summary="The faults in force per platform")
async def get_faults(request: Request) -> dict[str, Any]:
    state = get_state(request)
    async with state.lock:
        return state.faults.describe()


@router.delete("/faults", summary="Clear all faults")
async def clear_faults(request: Request) -> dict[str, Any]:
    state = get_state(request)
    async with state.lock:
        state.faults.clear()
        return state.faults.describe()


@router.get("/stats", summary="Requests per platform endpoint and records per object")
async def stats(request: Request) -> dict[str, Any]:
    state = get_state(request)
    async with state.lock:
        return {
            "requests": dict(state.requests),
            "records": {
                "incident": len(state.cherwell.incidents.records),
                "journal": len(state.cherwell.journals.records),
                "workorder": len(state.sfyc.records),
            },
        }


@router.get("/records/{kind}", summary="Every stored record of incident, journal or workorder")
async def records(request: Request, kind: RecordKind) -> list[dict[str, Any]]:
    state = get_state(request)
    async with state.lock:
        if kind == "incident":
            return list(state.cherwell.flat_records(INCIDENT_BUS_OB_ID))
        if kind == "journal":
            return list(state.cherwell.flat_records(JOURNAL_BUS_OB_ID))
        return [dict(r) for r in state.sfyc.records.values()]


@router.post("/tokens/expire", summary="Expire every issued access token of both platforms")
async def expire_tokens(request: Request) -> dict[str, int]:
    state = get_state(request)
    async with state.lock:
        now = state.clock()
        state.cherwell.expire_all(now)
        state.sfyc.expire_all(now)
        return {"cherwell": len(state.cherwell.tokens), "sfyc": len(state.sfyc.sessions)}


@router.post("/reset", summary="Forget all records, tokens, faults and counters")
async def reset(request: Request) -> dict[str, str]:
    state = get_state(request)
    async with state.lock:
        state.reset()
    return {"status": "reset"}
