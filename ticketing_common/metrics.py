"""Prometheus exposition shared by the services: one registry per app, `/metrics` guarded.

Each app owns its registry (tests run several apps in one process, and a global registry
would mix their counters). Counters and histograms are updated where things happen; gauges
that describe stored state (backlog, oldest age, tickets by state) are read from the
database when Prometheus scrapes, so they survive restarts and never drift from the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from ticketing_common.openapi import error_responses

# Latency buckets in seconds: a platform call or a push, from a fast LAN to a timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def set_gauge_family(gauge: Gauge, values: dict[tuple[str, ...], float]) -> None:
    """Replace every labelled child of `gauge` with `values`: a label set that disappeared
    from the database (a BE removed, a backlog drained) must not keep its last value."""
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)


def install_metrics_route(
    app: FastAPI,
    *,
    registry: Callable[[Request], CollectorRegistry],
    refresh: Callable[[Request], Awaitable[None]],
    guard: Callable[..., Any],
) -> None:
    """`GET /metrics`: refresh the stored-state gauges, then the exposition text format."""
    router = APIRouter(tags=["metrics"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics (exposition format)",
        dependencies=[Depends(guard)],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **error_responses()},
    )
    async def metrics(request: Request) -> Response:
        await refresh(request)
        return Response(generate_latest(registry(request)), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
