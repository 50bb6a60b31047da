"""Scale check: the claim and listing queries on a million rows, with their plans.

Seeds, on a temporary embedded Postgres, a WM database with 1 000 000 ticket revisions and
deliveries (half of the tickets cleared, the backlog of a few thousand pending revisions
assigned to a BE or waiting for one) and a BE database with 1 000 000 revisions (a few
thousand Received; an outbox of 100 000 outcome reports the WM refused, the backlog's
waiting behind them), then runs the services' own query functions, each inside a
transaction rolled back afterwards, with auto_explain (ANALYZE, BUFFERS) sending every plan
back to this client. Prints the time of each and, with --plans, its plans.

    .venv/bin/python -m bench.scale [--rows 1000000] [--backlog 5000] [--plans]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service import metrics as be_metrics
from be_service import reports as be_reports
from be_service import retention as be_retention
from be_service.models import Status
from be_service.pipeline import store
from be_service.pipeline.policy import RevisionUpdate, Transition
from be_service.services import tickets as be_tickets
from bench.support import scratch_postgres
from ticketing_common import embedded_pg
from ticketing_common.db import asyncpg_dsn, create_engine, ensure_database, make_sessionmaker
from ticketing_common.migrate import upgrade_to_head
from ticketing_common.outcome import OutcomeReport
from wm_service import metrics as wm_metrics
from wm_service.config import WMSettings
from wm_service.distribution import assignment, delivery, registry, reports
from wm_service.distribution.schemas import BackendRegistration
from wm_service.distribution.worker import DistributionConfig
from wm_service.services import retention as wm_retention
from wm_service.services import tickets as wm_tickets
from wm_service.services.bulk import driver_connection
from wm_service.services.ingestion import BULK_TABLES

Probe = Callable[[AsyncSession], Awaitable[Any]]
# How the WM judges a backend's silence and grants leases, at its defaults.
HEALTH = DistributionConfig.from_settings(WMSettings()).health

_SEED_WM = """
INSERT INTO ticket (id, kind, entity_id, dedup_key, open_key, state, category, revision,
                    priority, market, hub, opened_at, updated_at, cleared_at)
SELECT md5('t' || n)::uuid, 'snr-upstream', 'E' || n, 'snr-upstream:E' || n,
       CASE WHEN n % 2 = 0 THEN 'snr-upstream:E' || n END,
       CASE WHEN n % 2 = 0 THEN 'open' ELSE 'cleared' END, 'SNR', 2, 'P3',
       'M' || n % 50, 'H' || n % 500,
       now() - make_interval(mins => n), now() - make_interval(mins => n),
       CASE WHEN n % 2 = 1 THEN now() - make_interval(mins => n) END
FROM generate_series(1, $1::int / 2) AS n;

INSERT INTO ticket_revision (ticket_id, revision, action, priority, payload, created_at)
SELECT md5('t' || n)::uuid, r, CASE WHEN r = 1 THEN 'open' ELSE 'update' END, 'P3',
       json_build_object('dedup_key', 'snr-upstream:E' || n, 'revision', r),
       now() - make_interval(mins => n)
FROM generate_series(1, $1::int / 2) AS n, generate_series(1, 2) AS r;

INSERT INTO ticket_delivery (revision_id, ticket_id, dedup_key, revision, backend_name, status,
                             stage, attempts, created_at, assigned_at, delivered_at,
                             incident_public_id, work_order_number)
SELECT r.id, r.ticket_id, 'snr-upstream:E' || substr(t.entity_id, 2), r.revision,
       'be' || (1 + (r.id % 2)), 'delivered', 'completed', 1, r.created_at, r.created_at,
       r.created_at, (100000 + r.id)::text, (900000 + r.id)::text
FROM ticket_revision r JOIN ticket t ON t.id = r.ticket_id;

-- The backlog: the newest revisions not yet delivered, part assigned to be1, part waiting.
UPDATE ticket_delivery SET status = 'pending', stage = 'pending', delivered_at = NULL,
       backend_name = CASE WHEN id % 2 = 0 THEN 'be1' END,
       incident_public_id = NULL, work_order_number = NULL
WHERE id > (SELECT max(id) FROM ticket_delivery) - $2::int;
"""

_SEED_BE = """
INSERT INTO ticket_revision (ticket_id, revision, dedup_key, action, kind, category, priority,
                             payload, status, step, retry_round, received_at, updated_at,
                             completed_at, generated_at, platform_ids)
SELECT md5('b' || n)::uuid, 1, 'snr-upstream:E' || n, 'open', 'snr-upstream', 'SNR', 'P3',
       jsonb_build_object('title', 'SNR ' || n, 'description', 'd',
                          'work_order', jsonb_build_object('subject', 's', 'description', 'd')),
       CASE WHEN n > $1::int - $2::int THEN 'Received' ELSE 'Completed' END,
       CASE WHEN n > $1::int - $2::int THEN 'check' ELSE 'done' END, 0,
       now() - make_interval(secs => $1::int - n), now(), now(),
       now() - make_interval(secs => $1::int - n), '{}'::jsonb
FROM generate_series(1, $1::int) AS n;

-- The report outbox after the WM refused a tenth of the reports as invalid (an upgrade with
-- mixed versions): those set aside a minute ago (not due again yet), oldest first, then as
-- many as --backlog waiting their turn behind them (reports of Completed revisions: only
-- their number and their place behind the refused ones matter here).
INSERT INTO outcome_report (ticket_id, revision, seq, stage, body, created_at, refused_at,
                            refusal)
SELECT md5('b' || n)::uuid, 1, 1, 'completed',
       jsonb_build_object('ticket_id', md5('b' || n)::uuid, 'revision', 1, 'seq', 1,
                          'stage', 'completed'),
       now() - interval '1 hour',
       CASE WHEN n <= $1::int / 10 THEN now() - interval '1 minute' END,
       CASE WHEN n <= $1::int / 10 THEN 'the WM refused it: HTTP 422' END
FROM generate_series(1, $1::int / 10 + $2::int) AS n;
"""


async def seed(url: str, sql: str, rows: int, backlog: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for statement in filter(str.strip, sql.split(";\n")):
            # Two integers of our own, written into the seeding statements.
            await conn.execute(
                statement.replace("$1::int", str(int(rows))).replace("$2::int", str(int(backlog)))
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def probe(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, run: Probe, *, plans: bool
) -> None:
    """Run one query function in a rolled-back transaction; print its time (and plans)."""
    messages: list[str] = []
    async with sessionmaker() as session:
        raw = await driver_connection(session)
        raw.add_log_listener(lambda _conn, message: messages.append(str(message)))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_buffers = on",
            "SET auto_explain.log_nested_statements = on",
            "SET client_min_messages = log",
        ):
            await raw.execute(setting)
        started = time.perf_counter()
        await run(session)
        elapsed = time.perf_counter() - started
        await session.rollback()
    print(f"{name:<48} {elapsed * 1000:8.1f} ms  ({len(messages)} statement(s))")
    if plans:
        for message in messages:
            print("    " + message.replace("\n", "\n    "))


async def apply_reports(session: AsyncSession) -> Any:
    """The WM applying a BE's batch of 200 outcome reports (the deliveries found first)."""
    found = await (await session.connection()).execute(
        text(
            "SELECT ticket_id, revision FROM ticket_delivery WHERE backend_name = 'be1' "
            "ORDER BY id LIMIT 200"
        )
    )
    at = datetime.now(UTC)
    batch = [
        OutcomeReport(ticket_id=ticket_id, revision=revision, seq=1, stage="completed", at=at)
        for ticket_id, revision in found
    ]
    return await reports.apply(session, backend_name="be1", reports=batch)


def heartbeat(name: str, now: datetime) -> Probe:
    """What the WM does for a BE's heartbeat (PUT /api/v1/backends/{name}): the upsert, then
    its answer (registry.registered)."""

    async def run(session: AsyncSession) -> Any:
        registration = BackendRegistration.model_validate(
            {"url": "http://127.0.0.1:1", "intake_token": "scale-bench"}
        )
        await registry.register(
            session, name=name, registration=registration, now=now, heartbeat=True
        )
        return await registry.registered(session, name=name, now=now, health=HEALTH, heartbeat=True)

    return run


def analyze(*tables: str) -> Probe:
    """What a service's statistics refresh runs after a bulk write that grew its tables by a
    tenth (ticketing_common.db.StatisticsRefresher)."""

    async def run(session: AsyncSession) -> None:
        for table in tables:
            await (await session.connection()).exec_driver_sql(f"ANALYZE {table}")

    return run


async def record_batch(session: AsyncSession) -> Any:
    """A BE worker's claim of 400 and the record of their completion, with their reports."""
    claimed = await store.claim_batch(session, worker="scale", limit=400, lease_seconds=30)
    completed = Transition(Status.completed, keep_claim=False, delay=None, error=None)
    updates = [RevisionUpdate(item.id, "done", {}, completed) for item in claimed]
    await store.update_revisions(session, updates, worker="scale", report=True)


async def main_async(args: argparse.Namespace, server: embedded_pg.EmbeddedPostgres) -> None:
    wm_url, be_url = server.url("wm"), server.url("be_scale")
    for url, service, sql in ((wm_url, "wm", _SEED_WM), (be_url, "be", _SEED_BE)):
        await ensure_database(url)
        await upgrade_to_head(service, url)
        started = time.perf_counter()
        await seed(url, sql, args.rows, args.backlog)
        print(f"seeded {service}: {args.rows} rows in {time.perf_counter() - started:.0f} s")
    now = datetime.now(UTC)
    wm_engine, be_engine = create_engine(wm_url), create_engine(be_url)
    wm, be = make_sessionmaker(wm_engine), make_sessionmaker(be_engine)
    horizon = datetime(2000, 1, 1, tzinfo=UTC)  # nothing old enough: the plan, not the delete
    wm_prune = {step.table: step.prune for step in wm_retention.STEPS}
    be_prune = {step.table: step.prune for step in be_retention.STEPS}
    # The seeded tickets are a minute apart: past this horizon are the oldest 1 000 tickets'
    # 2 000 revisions, all kept (the first ordered the work order, the second is the latest):
    # what each retention pass looks at again while long-open tickets stay open.
    old_and_kept = now - timedelta(minutes=args.rows // 2 - 1000)
    wm_probes: dict[str, Probe] = {
        "WM claim (500 of be1's backlog)": lambda s: delivery.claim(
            s, backend_name="be1", now=now, limit=500, worker="scale", lease_seconds=30
        ),
        "WM assign (5 000 unassigned)": lambda s: assignment.assign_pending(
            s, keep=["be1", "be2"], targets=["be1", "be2"], now=now, limit=5000
        ),
        "WM ticket list, first page of 50": lambda s: wm_tickets.list_tickets(
            s, filters=wm_tickets.TicketFilters(), limit=50, cursor=None
        ),
        "WM ticket list, stage=pending": lambda s: wm_tickets.list_tickets(
            s, filters=wm_tickets.TicketFilters(stage="pending"), limit=50, cursor=None
        ),
        "WM ticket list, market=M7": lambda s: wm_tickets.list_tickets(
            s, filters=wm_tickets.TicketFilters(market="M7"), limit=50, cursor=None
        ),
        "WM open tickets by stage (overview, metrics)": lambda s: wm_tickets.count_by_stage(
            s, state="open"
        ),
        "WM outcome reports (200 of be1's)": apply_reports,
        "WM statistics refresh (ANALYZE of its 3 tables)": analyze(*BULK_TABLES),
        "WM metrics scrape (stored-state gauges)": lambda s: wm_metrics.refresh_stored_state(
            s, wm_metrics.WMMetrics()
        ),
        "WM heartbeat of be1 (upsert and answer)": heartbeat("be1", now),
        "WM retention: cleared tickets": lambda s: wm_prune["ticket"](s, horizon, 1000),
        "WM retention: superseded revisions": lambda s: wm_prune["ticket_revision"](
            s, horizon, 1000
        ),
        "WM retention: superseded revisions, 2 000 old kept": lambda s: wm_prune["ticket_revision"](
            s, old_and_kept, 1000
        ),
    }
    be_probes: dict[str, Probe] = {
        "BE claim (100 of the Received backlog)": lambda s: store.claim_batch(
            s, worker="scale", limit=100, lease_seconds=30
        ),
        "BE claim and record of a batch (400)": record_batch,
        "BE ticket list, first page of 50": lambda s: be_tickets.get_page(
            s, status=None, category=None, dedup_key=None, cursor=None, limit=50
        ),
        "BE ticket list, status=Received": lambda s: be_tickets.get_page(
            s,
            status=Status.received,
            category=None,
            dedup_key=None,
            cursor=None,
            limit=50,
        ),
        "BE reporter: the next 200 to send (refused aside)": lambda s: be_reports.due_reports(
            s, limit=200, retry_refused_seconds=600
        ),
        "BE outcome reports: counts (heartbeat, gauges)": be_reports.outbox_counts,
        "BE outcome reports: first 50 refused": lambda s: be_reports.outbox(
            s, state=be_reports.ReportState.refused, limit=50
        ),
        "BE outcome reports: first 50 waiting": lambda s: be_reports.outbox(
            s, state=be_reports.ReportState.waiting, limit=50
        ),
        "BE retention: finished revisions": lambda s: be_prune["ticket_revision"](s, horizon, 1000),
        "BE statistics refresh (ANALYZE ticket_revision)": analyze("ticket_revision"),
        "BE metrics scrape (stored-state gauges)": lambda s: be_metrics.refresh_stored_state(
            s, be_metrics.BEMetrics(), processing_default=True
        ),
    }
    try:
        for sessionmaker, probes in ((wm, wm_probes), (be, be_probes)):
            for name, run in probes.items():
                await probe(sessionmaker, name, run, plans=args.plans)
    finally:
        await wm_engine.dispose()
        await be_engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--plans", action="store_true", help="print every plan")
    args = parser.parse_args()
    with scratch_postgres("bench-scale-") as server:
        asyncio.run(main_async(args, server))


if __name__ == "__main__":
    main()
