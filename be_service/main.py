"""The BE application: create_app() and the lifespan that owns every resource.

Start-up: database (embedded when no URL), migrations, settings row, one HTTP client per
platform, the sender workers and the WM heartbeat; shutdown stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service import retention as retention_steps
from be_service.config import BESettings
from be_service.deps import require_metrics
from be_service.metrics import BEMetrics, refresh_stored_state
from be_service.pipeline import store
from be_service.pipeline.fence import Fence
from be_service.pipeline.health import CircuitState
from be_service.pipeline.sender import SenderContext
from be_service.pipeline.slots import BatchSlots, SlotsController, SlotsWindow, run_slots_controller
from be_service.pipeline.worker import WorkerStats, WorkerWakeups, run_worker
from be_service.platforms.registry import PLATFORMS, build_health, build_steps
from be_service.registration import health_source, heartbeat
from be_service.reports import Reporter, run_reporter
from be_service.routes import outcome_reports as outcome_report_routes
from be_service.routes import platforms as platform_routes
from be_service.routes import processing as processing_routes
from be_service.routes import settings as settings_routes
from be_service.routes import tickets as ticket_routes
from be_service.services import settings as settings_service
from ticketing_common import embedded_pg
from ticketing_common.aiohttp_transport import async_client
from ticketing_common.backoff import Backoff
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
from ticketing_common.lease import worker_name
from ticketing_common.logging import configure_logging
from ticketing_common.metrics import install_metrics_route, set_gauge_family
from ticketing_common.migrate import ensure_at_head, readiness_problems
from ticketing_common.retention import RetentionPolicy, RetentionWorker
from ticketing_common.web import add_health_routes, create_base_app

log = logging.getLogger(__name__)

# Workers finish the batch in hand on shutdown; after this they are cancelled (their
# revisions are taken again when the lease expires).
_STOP_GRACE_SECONDS = 10.0


def _http_client(
    settings: BESettings,
    limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
) -> httpx.AsyncClient:
    return async_client(
        timeout=httpx.Timeout(
            settings.request_timeout_seconds, connect=settings.connect_timeout_seconds
        ),
        limits=limits,
        trust_env=not settings.bypass_proxy,
    )


def _sender_context(
    settings: BESettings, app: FastAPI, http: dict[str, httpx.AsyncClient]
) -> SenderContext:
    steps = build_steps(settings, http, app.state.health, app.state.metrics)
    return SenderContext(
        sessionmaker=app.state.sessionmaker,
        steps=steps,
        backoff=Backoff(
            base_seconds=settings.backoff_base_seconds,
            cap_seconds=settings.backoff_cap_seconds,
            retry_after_cap_seconds=settings.retry_after_cap_seconds,
        ),
        lease_seconds=settings.claim_lease_seconds,
        ambiguous_create_delay_seconds=settings.ambiguous_create_delay_seconds,
        health=app.state.health,
        metrics=app.state.metrics,
        report_outcomes=bool(settings.wm_url),
        fence=app.state.fence,
        platform_calls={
            platform: asyncio.Semaphore(settings.workers_max)
            for platform in {step.platform for step in steps}
        },
    )


@contextlib.asynccontextmanager
async def _database(settings: BESettings, app: FastAPI) -> AsyncIterator[None]:
    """The migrated database (embedded when no URL is set), its engine and the settings row."""
    configured = settings.database_url.get_secret_value() if settings.database_url else None
    url, server = await resolve_database_url(
        configured, data_dir=settings.data_dir, database=settings.database_name
    )
    log.info("BE %s on database %s", settings.name, redact_url(url))
    engine = None
    try:
        engine = create_engine(
            url,
            pool_size=settings.effective_db_pool_size,
            max_overflow=settings.db_pool_overflow,
        )
        app.state.engine = engine
        await wait_for_database(engine, url=url, timeout_seconds=settings.database_wait_seconds)
        await ensure_at_head("be", url, engine)
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.statistics = StatisticsRefresher(
            engine, ("ticket_revision",), min_rows=500, min_interval=10.0
        )
        async for session in session_scope(app.state.sessionmaker):
            await settings_service.ensure(session, seed=settings)
        yield
    finally:
        if engine is not None:
            await engine.dispose()
        if server is not None:
            embedded_pg.stop(server)


@contextlib.asynccontextmanager
async def _background_tasks(
    settings: BESettings, app: FastAPI, http: dict[str, httpx.AsyncClient]
) -> AsyncIterator[None]:
    """The sender workers and the WM heartbeat, stopped (grace, then cancel) on exit."""
    ctx = _sender_context(settings, app, http)
    stop = asyncio.Event()
    slots, window = app.state.batch_slots, SlotsWindow()
    tasks = [
        asyncio.create_task(
            run_worker(
                ctx,
                worker=worker_name(settings.name, n),
                poll_interval=settings.poll_interval_seconds,
                stop=stop,
                stats=app.state.worker_stats,
                wakeups=app.state.worker_wakeups,
                slots=slots,
                window=window,
            ),
            name=f"be-worker-{n}",
        )
        for n in range(settings.workers_max)
    ]
    app.state.metrics.batches_in_flight_limit.set(slots.limit)
    if settings.workers_max > settings.workers:
        controller = run_slots_controller(
            slots,
            SlotsController(floor=settings.workers, ceiling=settings.workers_max),
            window,
            window_seconds=settings.worker_adjust_seconds,
            stop=stop,
            changed=app.state.metrics.batches_in_flight_limit.set,
        )
        tasks.append(asyncio.create_task(controller, name="be-batch-slots"))
    if settings.wm_url:
        health = health_source(
            app.state.sessionmaker,
            app.state.health,
            processing_default=settings.processing_enabled,
        )
        heartbeat_task = heartbeat(
            http["wm"],
            settings,
            stop=stop,
            fence=app.state.fence,
            renewed=functools.partial(_give_up_moved, app.state.sessionmaker),
            health=health,
        )
        tasks.append(asyncio.create_task(heartbeat_task, name="be-heartbeat"))
        reporter_task = run_reporter(
            _reporter(settings, app, http["wm"]),
            poll_seconds=settings.report_poll_seconds,
            backoff=ctx.backoff,
            stop=stop,
        )
        tasks.append(asyncio.create_task(reporter_task, name="be-reporter"))
    retention = RetentionWorker(
        app.state.sessionmaker,
        policy=RetentionPolicy.of(settings),
        steps=retention_steps.STEPS,
        clock=app.state.clock,
        pruned=app.state.metrics.retention_pruned,
        service=f"be[{settings.name}]",
    )
    app.state.retention = retention
    await retention.start()
    try:
        yield
    finally:
        await retention.stop()
        stop.set()
        app.state.worker_wakeups.bell.ring(everyone=True)  # idle workers see the stop now
        await _stop_tasks(tasks, stop)


async def _give_up_moved(sessionmaker: async_sessionmaker[AsyncSession], generation: int) -> None:
    async for session in session_scope(sessionmaker):
        moved = await store.mark_moved(session, generation=generation, report=True)
    if moved:
        log.warning(
            "%d revision(s) given up as Moved: a failover sent them to another BE",
            moved,
            extra={"generation": generation, "moved": moved},
        )


def _reporter(settings: BESettings, app: FastAPI, http: httpx.AsyncClient) -> Reporter:
    assert settings.wm_url is not None
    base = settings.wm_url.rstrip("/")
    return Reporter(
        sessionmaker=app.state.sessionmaker,
        http=http,
        url=f"{base}/api/v1/backends/{settings.name}/reports",
        token=settings.wm_token.get_secret_value() if settings.wm_token else None,
        batch_size=settings.report_batch_size,
        retry_refused_seconds=settings.report_refused_retry_seconds,
    )


async def _stop_tasks(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    stop.set()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=_STOP_GRACE_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _lifespan(settings: BESettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(_database(settings, app))
            # One client per platform, so a slow platform never holds another's connections.
            limits = httpx.Limits(max_connections=settings.workers_max * 2 + 4)
            http = {
                name: await stack.enter_async_context(_http_client(settings, limits))
                for name in PLATFORMS
            }
            http["wm"] = await stack.enter_async_context(_http_client(settings))
            await stack.enter_async_context(_background_tasks(settings, app, http))
            yield

    return lifespan


def create_app(settings: BESettings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    """A BE app; without `settings` they are read from the BE_* environment. `clock` is
    "now" for the retention (a soak compresses time with it).

    Only the process entry point (no `settings`) configures logging: an app built in
    someone else's process (tests, `ticketing up`) leaves that process's logging alone.
    """
    if settings is None:
        settings = BESettings()
        configure_logging(
            settings.log_level, service=f"be[{settings.name}]", fmt=settings.log_format
        )
    for variable in settings.unset_tokens():
        log.warning("%s is not set: its endpoints reject every request until it is", variable)

    app = create_base_app(
        title=f"BE service ({settings.name})",
        description="Durable, batched, retried delivery of tickets to Cherwell and SFyC.",
        version="0.1.0",
        lifespan=_lifespan(settings),
    )
    app.state.settings = settings
    app.state.worker_stats = WorkerStats()
    app.state.worker_wakeups = WorkerWakeups()
    app.state.batch_slots = BatchSlots(settings.workers)
    app.state.health = build_health(settings)
    app.state.fence = Fence(enabled=bool(settings.wm_url))
    app.state.clock = clock
    app.state.metrics = BEMetrics()

    async def readiness() -> dict[str, str]:
        engine = getattr(app.state, "engine", None)
        if engine is None:
            return {"database": "not started"}
        return await readiness_problems(engine, "be")

    add_health_routes(app, readiness)
    for router in (
        ticket_routes.router,
        settings_routes.router,
        platform_routes.router,
        processing_routes.router,
        outcome_report_routes.router,
    ):
        app.include_router(router)
    install_metrics_route(
        app,
        registry=lambda request: request.app.state.metrics.registry,
        refresh=_refresh_metrics,
        guard=require_metrics,
    )
    return app


async def _refresh_metrics(request: Request) -> None:
    """The gauges read at scrape time: revisions by status and step, oldest Received age,
    processing on/off, and each platform's circuit."""
    app = request.app
    metrics: BEMetrics = app.state.metrics
    async for session in session_scope(app.state.sessionmaker):
        await refresh_stored_state(
            session, metrics, processing_default=app.state.settings.processing_enabled
        )
    set_gauge_family(
        metrics.circuit_state,
        {
            (name, state.value): float(health.state is state)
            for name, health in app.state.health.items()
            for state in CircuitState
        },
    )
