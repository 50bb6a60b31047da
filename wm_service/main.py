"""The WM application: create_app() wires settings, database, routes and background workers.

`ticketing wm` calls create_app() with settings from the environment; tests pass their own.
The lifespan migrates the database to head before serving and owns every long-lived resource.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request

from ticketing_common import embedded_pg
from ticketing_common.auth import token_or_locked
from ticketing_common.clock import Clock, system_clock
from ticketing_common.db import (
    StatisticsRefresher,
    create_engine,
    make_sessionmaker,
    redact_url,
    resolve_database_url,
    session_scope,
    wait_for_database,
)
from ticketing_common.logging import configure_logging
from ticketing_common.metrics import install_metrics_route, set_gauge_family
from ticketing_common.migrate import ensure_at_head, readiness_problems
from ticketing_common.retention import RetentionPolicy, RetentionWorker
from ticketing_common.web import add_health_routes, create_base_app
from wm_service.config import WMSettings
from wm_service.console.routes import install_console
from wm_service.deps import require_metrics
from wm_service.distribution import registry
from wm_service.distribution import routes as backend_routes
from wm_service.distribution.delivery import utcnow
from wm_service.distribution.worker import DistributionConfig, DistributionWorker
from wm_service.metrics import WMMetrics, refresh_stored_state
from wm_service.routes import aggregations, control, maintenance, tickets, topology
from wm_service.routes import settings as settings_routes
from wm_service.services import ingestion
from wm_service.services import retention as retention_steps
from wm_service.services.push_plan import PushApplier

log = logging.getLogger(__name__)


class BackgroundWorker(Protocol):
    """A task the lifespan starts after migrations and stops before the engine closes."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _background_workers(app: FastAPI) -> list[BackgroundWorker]:
    """The workers this app runs (the distribution worker is registered here)."""
    distribution = DistributionWorker(
        app.state.sessionmaker,
        DistributionConfig.from_settings(app.state.settings),
        app.state.metrics,
    )
    # Exposed so that ingestion can call app.state.distribution.wake() after a commit.
    app.state.distribution = distribution
    config: WMSettings = app.state.settings
    retention = RetentionWorker(
        app.state.sessionmaker,
        policy=RetentionPolicy.of(config),
        steps=retention_steps.STEPS,
        clock=app.state.clock,
        pruned=app.state.metrics.retention_pruned,
        service="wm",
    )
    app.state.retention = retention
    # Exposed so that a big push can wake it after its commit.
    app.state.push_applier = PushApplier(
        app.state.sessionmaker,
        targets=distribution.targets,
        written=distribution.wake,
        statistics=app.state.statistics,
    )
    return [distribution, app.state.push_applier, retention]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    config: WMSettings = app.state.settings
    configured = config.database_url.get_secret_value() if config.database_url else None
    url, started_server = await resolve_database_url(
        configured, data_dir=config.data_dir, database=config.database_name
    )
    log.info("WM on database %s", redact_url(url))
    try:
        engine = create_engine(url)
        app.state.engine = engine
        try:
            await wait_for_database(engine, url=url, timeout_seconds=config.database_wait_seconds)
            await ensure_at_head("wm", url, engine)
            app.state.sessionmaker = make_sessionmaker(engine)
            app.state.statistics = StatisticsRefresher(
                engine, ingestion.BULK_TABLES, min_rows=500, min_interval=10.0
            )
            workers = _background_workers(app)
            try:
                for worker in workers:
                    await worker.start()
                yield
            finally:
                for worker in reversed(workers):
                    await worker.stop()
        finally:
            await engine.dispose()
    finally:
        if started_server is not None:
            embedded_pg.stop(started_server)


def _publish_push_schema(app: FastAPI) -> None:
    """Add the msgspec push schema to the OpenAPI components the push route refers to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(aggregations.PUSH_SCHEMA_COMPONENTS)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: WMSettings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    """The WM FastAPI app; `settings` defaults to the WM_* environment. `clock` is "now" for
    pushes and retention (a soak compresses time with it).

    Only the process entry point (no `settings`) configures logging: an app built inside
    another process (tests, benchmarks) leaves that process's logging alone.
    """
    config = settings or WMSettings()
    if settings is None:
        configure_logging(config.log_level, service="wm", fmt=config.log_format)
    app = create_base_app(
        title="WM — workflow manager",
        description=(
            "Turns the topology aggregator's pushes into trouble tickets, stores them with "
            "every revision and hands them to the BE instances."
        ),
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = config
    app.state.clock = clock
    app.state.ingest_token = token_or_locked(config.ingest_token, variable="WM_INGEST_TOKEN")
    app.state.admin_token = token_or_locked(config.admin_token, variable="WM_ADMIN_TOKEN")
    app.state.metrics_token = token_or_locked(config.metrics_token, variable="WM_METRICS_TOKEN")
    app.state.backend_token = token_or_locked(config.backend_token, variable="WM_BACKEND_TOKEN")
    app.state.metrics = WMMetrics()

    async def readiness() -> dict[str, str]:
        return await readiness_problems(app.state.engine, "wm")

    add_health_routes(app, readiness)
    for router in (
        aggregations.router,
        topology.router,
        tickets.router,
        settings_routes.router,
        maintenance.router,
        backend_routes.router,
        control.router,
    ):
        app.include_router(router)
    install_metrics_route(
        app,
        registry=lambda request: request.app.state.metrics.registry,
        refresh=_refresh,
        guard=require_metrics,
    )
    install_console(app)
    _publish_push_schema(app)
    return app


async def _refresh(request: Request) -> None:
    """The gauges of stored state, read at scrape time (tickets, outbox, BE availability)."""
    app = request.app
    metrics: WMMetrics = app.state.metrics
    health = DistributionConfig.from_settings(app.state.settings).health
    async for session in session_scope(app.state.sessionmaker):
        await refresh_stored_state(session, metrics)
        backends = await registry.list_all(session)
    now = utcnow()
    set_gauge_family(
        metrics.backend_available,
        {(b.name,): float(registry.is_available(b, now=now, health=health)) for b in backends},
    )
