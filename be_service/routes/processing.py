"""POST /api/v1/processing/pause and /resume: the one switch the WM may flip for operators.

The admin token works too; the control token (BE_CONTROL_TOKEN, held by the WM) opens these
and the re-drive endpoints and nothing else.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Depends, Request

from be_service.deps import Actor, SessionDep, get_settings, require_control, wake_workers
from be_service.schemas import SettingsPublic, SettingsUpdate
from be_service.services import settings as settings_service
from ticketing_common.web import BoundaryRoute

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/processing",
    tags=["processing"],
    dependencies=[Depends(require_control)],
    route_class=BoundaryRoute,
)


async def _switch(
    request: Request, session: SessionDep, background: BackgroundTasks, *, on: bool, actor: str
) -> SettingsPublic:
    row = await settings_service.update(session, patch=SettingsUpdate(processing_enabled=on))
    # The log line is the record of who did it: written once the switch is committed.
    background.add_task(
        log.warning,
        "processing %s by %s",
        "resumed" if on else "paused",
        actor,
        extra={"actor": actor},
    )
    return settings_service.public(row, env=get_settings(request))


@router.post("/pause", summary="Stop sending to the platforms (tickets are still recorded)")
async def pause(
    request: Request, session: SessionDep, background: BackgroundTasks, actor: str = Actor
) -> SettingsPublic:
    return await _switch(request, session, background, on=False, actor=actor)


@router.post("/resume", dependencies=[Depends(wake_workers)], summary="Send to the platforms again")
async def resume(
    request: Request, session: SessionDep, background: BackgroundTasks, actor: str = Actor
) -> SettingsPublic:
    return await _switch(request, session, background, on=True, actor=actor)
