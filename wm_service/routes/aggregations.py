"""POST /api/v1/aggregations/{kind} (the aggregator's pushes) and GET /api/v1/aggregations."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response

from ticketing_common.openapi import error_responses
from ticketing_common.web import BoundaryRoute, wake_after_response
from wm_service.deps import (
    SessionDep,
    media_type,
    read_push_body,
    require_admin,
    require_ingest,
)
from wm_service.kinds import Kind
from wm_service.schemas import PushPage, PushResult
from wm_service.services import push_plan
from wm_service.services import pushes as pushes_service
from wm_service.services.ingestion import process_push, written
from wm_service.services.push_decode import CSV_COLUMNS, Push, decode_push

router = APIRouter(prefix="/api/v1/aggregations", tags=["aggregations"], route_class=BoundaryRoute)

# The push body is decoded by msgspec (not pydantic) for speed; its schema is published in
# the OpenAPI components under these names (see main.py).
(_PUSH_REF,), PUSH_SCHEMA_COMPONENTS = msgspec.json.schema_components(
    [Push], ref_template="#/components/schemas/{name}"
)
_PUSH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _PUSH_REF},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "One row per sample; header: " + ",".join(CSV_COLUMNS),
                }
            },
        },
    }
}


@router.post(
    "/{kind}",
    response_model=PushResult,
    dependencies=[Depends(require_ingest)],
    summary="Push one aggregation (JSON, or CSV with aggregation_id/generated_at in the query)",
    openapi_extra=_PUSH_BODY,
    # 409: a late push (older than the latest one of its kind), which is not applied.
    responses=error_responses(409, 413, 415),
)
async def push_aggregation(
    kind: Kind,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    aggregation_id: str | None = Query(None, description="CSV pushes only."),
    generated_at: str | None = Query(None, description="CSV pushes only (ISO 8601, with zone)."),
) -> PushResult:
    config = request.app.state.settings
    distribution = getattr(request.app.state, "distribution", None)
    with request.app.state.metrics.observe_push(kind) as observation:
        kind_of_body = media_type(request, accepted=("application/json", "text/csv"))
        body = await read_push_body(request, limit=config.max_push_bytes)
        received_at = request.app.state.clock()
        # Decoding a large push is CPU work; a thread keeps the event loop answering.
        push = await asyncio.to_thread(
            decode_push,
            body.data,
            media_type=kind_of_body,
            aggregation_id=aggregation_id,
            generated_at=generated_at,
            now=received_at,
            skew=timedelta(seconds=config.clock_skew_seconds),
            release=body.release_before,
        )
        del body
        targets = [] if distribution is None else await distribution.targets(session)
        result, replayed = await process_push(
            session,
            kind=kind,
            push=push,
            received_at=received_at,
            targets=targets,
            chunk_size=config.push_chunk_revisions,
        )
        observation.result = result
        if replayed:
            observation.outcome = "replayed"
    if replayed:
        response.headers["Idempotent-Replay"] = "true"
    else:
        revisions = written(result)
        applier = getattr(request.app.state, "push_applier", None)
        if push_plan.written_later(revisions, config.push_chunk_revisions):
            # Stored to be written after this answer: the applier wakes the distribution
            # and refreshes the statistics as it writes them.
            if applier is not None:
                wake_after_response(background, applier.wake)
        else:
            statistics = request.app.state.statistics
            if await statistics.due(revisions):
                background.add_task(statistics.refresh)
            if distribution is not None:
                # Background tasks run after the response, hence after the commit: the new
                # outbox rows are visible to the distribution worker when it wakes.
                wake_after_response(background, distribution.wake)
    return result


@router.get(
    "",
    response_model=PushPage,
    dependencies=[Depends(require_admin)],
    summary="Recent pushes and their results, newest first",
)
async def list_pushes(
    session: SessionDep,
    kind: Kind | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> PushPage:
    return await pushes_service.list_pushes(session, kind=kind, limit=limit, cursor=cursor)
