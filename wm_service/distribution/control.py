"""Operators' actions on the BEs, carried out by the WM: pause, resume, re-drive Errors.

One call on the WM reaches every BE concerned with that BE's control token (it opens the
BE's pause, resume and re-drive endpoints and nothing else). The BEs are read in one short
transaction, called with no transaction open, and the action is recorded — who, when, with
which filters, what each BE answered — in another (`control_action`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.db import session_scope
from ticketing_common.errors import NotFound
from ticketing_common.text import NUL_FREE
from wm_service.distribution import registry
from wm_service.distribution.models import Backend
from wm_service.distribution.schemas import BACKEND_NAME_PATTERN
from wm_service.models import ControlAction, TicketDelivery

log = logging.getLogger(__name__)

Action = Literal["pause", "resume", "retry-errors", "retry-ticket"]
CALL_TIMEOUT_SECONDS = 10.0
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=NUL_FREE)]


class ControlRequest(BaseModel):
    """Who asks, and which BEs and Error revisions the action is for (none: all)."""

    model_config = ConfigDict(extra="forbid")

    actor: Text = Field(description="Who asks (recorded with the action).")
    backend: str | None = Field(default=None, pattern=BACKEND_NAME_PATTERN)
    kind: Text | None = Field(default=None, description="re-drive: only this kind")
    market: Text | None = Field(default=None, description="re-drive: only this market")
    operation: Annotated[str, Field(max_length=16, pattern=NUL_FREE)] | None = Field(
        default=None, description="re-drive: only revisions that failed at this step"
    )


class BackendAnswer(BaseModel):
    ok: bool
    status: int | None = None
    retried: int | None = None
    error: str | None = None


class ControlResult(BaseModel):
    action: Action
    at: datetime
    backends: dict[str, BackendAnswer]


async def carry_out(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    action: Action,
    request: ControlRequest,
    ticket_id: uuid.UUID | None = None,
) -> ControlResult:
    """Call every BE concerned; a BE that cannot be reached is an answer, not a failure."""
    async for session in session_scope(sessionmaker):
        targets = await _targets(session, request=request, ticket_id=ticket_id)
    path, params = _endpoint(action, request, ticket_id)
    async with httpx.AsyncClient(timeout=CALL_TIMEOUT_SECONDS) as client:
        answers = await asyncio.gather(*(_call(client, b, path, params) for b in targets))
    result = ControlResult(
        action=action,
        at=datetime.now(UTC),
        backends={b.name: answer for b, answer in zip(targets, answers, strict=True)},
    )
    async for session in session_scope(sessionmaker):
        session.add(
            ControlAction(
                at=result.at,
                actor=request.actor,
                action=action,
                request={**request.model_dump(mode="json"), "ticket_id": str(ticket_id or "")},
                result=result.model_dump(mode="json")["backends"],
            )
        )
    log.warning(
        "control %s by %s: %s",
        action,
        request.actor,
        ", ".join(f"{name} {'ok' if a.ok else a.error}" for name, a in result.backends.items()),
        extra={"actor": request.actor, "action": action},
    )
    return result


async def _targets(
    session: AsyncSession, *, request: ControlRequest, ticket_id: uuid.UUID | None
) -> list[Backend]:
    if ticket_id is not None:
        return [await _holder(session, ticket_id)]
    if request.backend is not None:
        return [await registry.get(session, name=request.backend)]
    return await registry.list_all(session)


async def _holder(session: AsyncSession, ticket_id: uuid.UUID) -> Backend:
    """The BE holding the ticket's latest delivered revision."""
    name = await session.scalar(
        select(TicketDelivery.backend_name)
        .where(
            col(TicketDelivery.ticket_id) == ticket_id,
            col(TicketDelivery.backend_name).is_not(None),
        )
        .order_by(col(TicketDelivery.revision).desc())
        .limit(1)
    )
    if name is None:
        raise NotFound(f"ticket {ticket_id} has not reached any BE")
    return await registry.get(session, name=name)


def _endpoint(
    action: Action, request: ControlRequest, ticket_id: uuid.UUID | None
) -> tuple[str, dict[str, str]]:
    if action in ("pause", "resume"):
        return f"/api/v1/processing/{action}", {"actor": request.actor}
    if action == "retry-ticket":
        return f"/api/v1/tickets/{ticket_id}/retry", {}
    filters = {"kind": request.kind, "market": request.market, "operation": request.operation}
    return "/api/v1/tickets/retry-errors", {k: v for k, v in filters.items() if v is not None}


async def _call(
    client: httpx.AsyncClient, backend: Backend, path: str, params: dict[str, str]
) -> BackendAnswer:
    if not backend.control_token:
        return BackendAnswer(ok=False, error="this BE sent no control token (BE_CONTROL_TOKEN)")
    try:
        response = await client.post(
            backend.url + path,
            params=params,
            headers={"Authorization": f"Bearer {backend.control_token}"},
        )
    except httpx.HTTPError as exc:
        return BackendAnswer(ok=False, error=f"unreachable: {type(exc).__name__}")
    body: Any = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if response.status_code >= 400:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        return BackendAnswer(ok=False, status=response.status_code, error=message or "refused")
    retried = body.get("retried") if isinstance(body, dict) else None
    return BackendAnswer(ok=True, status=response.status_code, retried=retried)


async def recent(session: AsyncSession, *, limit: int) -> list[ControlAction]:
    rows = await session.exec(
        select(ControlAction).order_by(col(ControlAction.id).desc()).limit(limit)
    )
    return list(rows.all())


class PlatformAttempt(BaseModel):
    """One try of one platform operation on one revision, as the BE recorded it."""

    revision: int
    at: datetime
    operation: str
    ok: bool
    http_status: int | None = None
    error: str | None = None


async def ticket_attempts(
    sessionmaker: async_sessionmaker[AsyncSession], *, ticket_id: uuid.UUID
) -> tuple[str, list[PlatformAttempt]] | None:
    """The platform attempts of one ticket, read from the BE that holds it (one call, made
    only when an operator opens that ticket); None when that BE cannot tell."""
    async for session in session_scope(sessionmaker):
        try:
            backend = await _holder(session, ticket_id)
        except NotFound:
            return None
    if not backend.control_token:
        return None
    async with httpx.AsyncClient(timeout=CALL_TIMEOUT_SECONDS) as client:
        try:
            response = await client.get(
                f"{backend.url}/api/v1/tickets/{ticket_id}",
                headers={"Authorization": f"Bearer {backend.control_token}"},
            )
        except httpx.HTTPError:
            return None
    if response.status_code != 200:
        return None
    attempts = [
        PlatformAttempt(revision=revision["revision"], **attempt)
        for revision in response.json().get("revisions", [])
        for attempt in revision.get("attempts", [])
    ]
    return backend.name, sorted(attempts, key=lambda a: a.at)
