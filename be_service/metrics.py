"""The BE's Prometheus metrics: revisions by status and step, platform calls, circuits.

Declared once here (names with units, bounded labels: platform, operation, status class,
outcome, status, step); deploy/prometheus/alerts.yml and the dashboard use these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.models import DONE, Status
from be_service.reports import ReportState, outbox_counts
from ticketing_common.metrics import LATENCY_BUCKETS, set_gauge_family

BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 200)


def status_class(http_status: int | None) -> str:
    """'2xx' … '5xx', or 'transport' for a call that got no HTTP answer."""
    return f"{http_status // 100}xx" if http_status else "transport"


@dataclass
class BEMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.platform_requests = Counter(
            "be_platform_requests",
            "HTTP calls to a platform, by operation and status class.",
            ["platform", "operation", "status_class"],
            registry=r,
        )
        self.platform_seconds = Histogram(
            "be_platform_request_duration_seconds",
            "Duration of one platform call.",
            ["platform", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.login_failures = Counter(
            "be_platform_login_failures",
            "Failed logins (token requests) per platform.",
            ["platform"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "be_circuit_state",
            "1 for the circuit's current state (closed, open, half_open).",
            ["platform", "state"],
            registry=r,
        )
        self.attempts = Counter(
            "be_attempts",
            "Operation attempts on revisions, by outcome (ok, retry, wait, error).",
            ["operation", "outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "be_batch_size",
            "Revisions per platform request.",
            ["operation"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.retention_pruned = Counter(
            "be_retention_pruned_rows",
            "Rows the retention pass deleted, by table.",
            ["table"],
            registry=r,
        )
        self.errored = Counter(
            "be_revisions_errored",
            "Revisions that ended in Error, by failed operation.",
            ["operation"],
            registry=r,
        )
        self.batches_in_flight_limit = Gauge(
            "be_batches_in_flight_limit",
            "Batches this process lets its workers hold at once (BE_WORKERS up to "
            "BE_WORKERS_MAX, raised while that raises the completed rate).",
            registry=r,
        )
        # Read from the database at scrape time.
        self.revisions = Gauge(
            "be_revisions",
            "Ticket revisions by status and step.",
            ["status", "step"],
            registry=r,
        )
        self.oldest_received_age = Gauge(
            "be_oldest_received_age_seconds",
            "Age of the oldest revision still Received (0 when none).",
            registry=r,
        )
        self.processing_enabled = Gauge(
            "be_processing_enabled",
            "1 while ticket processing is on (run-time setting).",
            registry=r,
        )
        self.outcome_reports = Gauge(
            "be_outcome_reports",
            "Outcome reports not yet acknowledged by the WM: waiting, or refused as invalid "
            "and set aside.",
            ["state"],
            registry=r,
        )
        self.oldest_outcome_report_age = Gauge(
            "be_oldest_outcome_report_age_seconds",
            "Age of the oldest outcome report waiting for the WM's ack (0 when none).",
            registry=r,
        )


# Revisions by status and step, read for every heartbeat (every BE_HEARTBEAT_SECONDS) and
# every scrape. Grouping the whole table read every row: 0.53 s at a million revisions
# (bench.scale), more with real documents, on the heartbeat that renews this BE's lease.
# So the statuses that stay few (Received, Error, Moved) are grouped through the status
# index, and Completed, which grows with every ticket, is counted from that index alone:
# a Completed revision's step is always `done` (pipeline/policy.py completes a revision
# only past its last step; an operator's retry completes an Error revision a later clear
# superseded with step `done` too: services/tickets.py).
_REVISIONS = text(
    """
    SELECT status, step, count(*) FROM ticket_revision
    WHERE status = ANY(CAST(:unfinished AS text[])) GROUP BY status, step
    UNION ALL
    SELECT 'Completed', :done, count(*) FROM ticket_revision WHERE status = 'Completed'
    """
)
_UNFINISHED = [status.value for status in Status if status is not Status.completed]
_OLDEST = text(
    """
    SELECT coalesce(extract(epoch FROM now() - min(received_at)), 0)
    FROM ticket_revision WHERE status = 'Received'
    """
)
_PROCESSING = text("SELECT processing_enabled FROM be_setting WHERE id = 1")


@dataclass(frozen=True)
class StoredState:
    """What the database holds, as the gauges and the WM heartbeat describe it."""

    revisions: dict[tuple[str, str], int]  # by (status, step)
    oldest_received_age: float  # seconds; 0 without a Received revision
    processing_enabled: bool

    def by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (status, _), n in self.revisions.items():
            counts[status] = counts.get(status, 0) + n
        return counts


async def read_stored_state(session: AsyncSession, *, processing_default: bool) -> StoredState:
    connection = await session.connection()
    found = await connection.execute(_REVISIONS, {"unfinished": _UNFINISHED, "done": DONE})
    rows = [(status, step, n) for status, step, n in found if n]
    oldest = float((await connection.execute(_OLDEST)).scalar_one())
    enabled = (await connection.execute(_PROCESSING)).scalar_one_or_none()
    return StoredState(
        revisions={(status, step): n for status, step, n in rows},
        oldest_received_age=oldest,
        processing_enabled=processing_default if enabled is None else bool(enabled),
    )


async def refresh_stored_state(
    session: AsyncSession, metrics: BEMetrics, *, processing_default: bool
) -> None:
    """Set the gauges that describe what the database holds."""
    state = await read_stored_state(session, processing_default=processing_default)
    set_gauge_family(metrics.revisions, {k: float(n) for k, n in state.revisions.items()})
    metrics.oldest_received_age.set(state.oldest_received_age)
    metrics.processing_enabled.set(1 if state.processing_enabled else 0)
    # The outbox of outcome reports (its counts also go with each heartbeat: registration.py).
    reports = await outbox_counts(session)
    metrics.outcome_reports.labels(ReportState.waiting).set(reports.waiting)
    metrics.outcome_reports.labels(ReportState.refused).set(reports.refused)
    metrics.oldest_outcome_report_age.set(reports.oldest_waiting_seconds)
