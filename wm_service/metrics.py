"""The WM's Prometheus metrics: pushes, revisions, the outbox per BE, deliveries, failovers.

Declared once here (names with units, bounded labels: kind, outcome, action, backend, state);
the alert rules in deploy/prometheus/ and the Grafana dashboard use exactly these names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.errors import Conflict, DomainError
from ticketing_common.metrics import LATENCY_BUCKETS, set_gauge_family
from wm_service.schemas import PushResult
from wm_service.services.tickets import count_by_stage

ENTRY_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


@dataclass
class WMMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.pushes = Counter(
            "wm_pushes",
            "Pushes by kind and outcome (applied, replayed, rejected, late, failed).",
            ["kind", "outcome"],
            registry=r,
        )
        self.push_seconds = Histogram(
            "wm_push_duration_seconds",
            "Time to validate and apply one push.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.push_entries = Histogram(
            "wm_push_entries",
            "Entries per applied push.",
            ["kind"],
            buckets=ENTRY_BUCKETS,
            registry=r,
        )
        self.revisions = Counter(
            "wm_revisions",
            "Ticket revisions decided, by kind and action (open, update, clear).",
            ["kind", "action"],
            registry=r,
        )
        self.deliveries = Counter(
            "wm_deliveries",
            "Batches POSTed to a BE, by outcome (delivered, failed, split).",
            ["backend", "outcome"],
            registry=r,
        )
        self.delivered_revisions = Counter(
            "wm_delivered_revisions", "Ticket revisions a BE accepted.", ["backend"], registry=r
        )
        self.retention_pruned = Counter(
            "wm_retention_pruned_rows",
            "Rows the retention pass deleted, by table.",
            ["table"],
            registry=r,
        )
        self.failovers = Counter(
            "wm_failovers",
            "Times a BE's elements were moved to the other BEs.",
            ["backend", "reason"],
            registry=r,
        )
        self.backend_available = Gauge(
            "wm_backend_available",
            "1 while the BE heartbeats or answers its probe.",
            ["backend"],
            registry=r,
        )
        # Read from the database at scrape time.
        self.tickets = Gauge(
            "wm_tickets",
            "Tickets by kind and state (open, cleared).",
            ["kind", "state"],
            registry=r,
        )
        self.tickets_by_stage = Gauge(
            "wm_open_tickets_by_stage",
            "Open tickets by the stage of their latest revision (pending, at_backend, "
            "completed, error, moved).",
            ["stage"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "wm_outbox_pending_revisions",
            "Revisions not yet accepted by a BE, by assigned BE ('' = not assigned yet).",
            ["backend"],
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "wm_outbox_oldest_pending_age_seconds",
            "Age of the oldest revision not yet accepted by a BE, by assigned BE.",
            ["backend"],
            registry=r,
        )
        self.revisions_to_write = Gauge(
            "wm_push_revisions_to_write",
            "Revisions big pushes decided that are still being written, by pushed kind "
            "(WM_PUSH_CHUNK_REVISIONS; 0 within seconds of such a push).",
            ["kind"],
            registry=r,
        )
        self.last_push = Gauge(
            "wm_last_push_timestamp_seconds",
            "When the latest push of each kind was received.",
            ["kind"],
            registry=r,
        )

    @contextmanager
    def observe_push(self, kind: str) -> Iterator[PushObservation]:
        """Count one push by its outcome and time it; the caller reports the result."""
        observation = PushObservation()
        started = time.perf_counter()
        try:
            yield observation
        except Conflict:
            observation.outcome = "late"
            raise
        except DomainError:
            observation.outcome = "rejected"
            raise
        except Exception:
            observation.outcome = "failed"
            raise
        finally:
            self.pushes.labels(kind, observation.outcome).inc()
            self.push_seconds.labels(kind).observe(time.perf_counter() - started)
            result = observation.result
            if result is not None and observation.outcome == "applied":
                self.push_entries.labels(kind).observe(result.entries)
                for action, count in (
                    ("open", result.tickets.opened),
                    ("update", result.tickets.updated),
                    ("clear", result.tickets.cleared),
                ):
                    self.revisions.labels(kind, action).inc(count)


@dataclass
class PushObservation:
    outcome: str = "applied"
    result: PushResult | None = None


_TICKETS = text("SELECT kind, state, count(*) FROM ticket GROUP BY kind, state")
_OUTBOX = text(
    """
    SELECT coalesce(backend_name, ''), count(*), extract(epoch FROM now() - min(created_at))
    FROM ticket_delivery WHERE status = 'pending' GROUP BY 1
    """
)
_TO_WRITE = text("SELECT push_kind, sum(revisions) FROM push_plan GROUP BY push_kind")
_LAST_PUSH = text(
    "SELECT kind, extract(epoch FROM max(received_at)) FROM aggregation_push GROUP BY kind"
)


async def refresh_stored_state(session: AsyncSession, metrics: WMMetrics) -> None:
    """Set the gauges that describe what the database holds (a few grouped reads)."""
    connection = await session.connection()
    tickets = (await connection.execute(_TICKETS)).all()
    set_gauge_family(metrics.tickets, {(kind, state): n for kind, state, n in tickets})
    outbox = (await connection.execute(_OUTBOX)).all()
    set_gauge_family(metrics.outbox_pending, {(b,): n for b, n, _ in outbox})
    set_gauge_family(metrics.outbox_oldest_age, {(b,): float(age) for b, _, age in outbox})
    stages = await count_by_stage(session, state="open")
    set_gauge_family(metrics.tickets_by_stage, {(stage,): n for stage, n in stages.items()})
    to_write = (await connection.execute(_TO_WRITE)).all()
    set_gauge_family(metrics.revisions_to_write, {(kind,): n for kind, n in to_write})
    pushes = (await connection.execute(_LAST_PUSH)).all()
    set_gauge_family(metrics.last_push, {(kind,): float(at) for kind, at in pushes})
