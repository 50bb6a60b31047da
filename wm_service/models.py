"""Tables of the WM service's database (its own MetaData, see ticketing_common.db).

Pushes, the critical samples kept for the window, tickets with their revisions, the delivery
outbox the distribution workers drain, the topology inventory and the run-time settings.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from ticketing_common.db import make_model_base

if TYPE_CHECKING:
    # mypy cannot use a base class built at run time; to it the base is plain SQLModel.
    from sqlmodel import SQLModel as WMModel
else:
    WMModel = make_model_base("WMModel")


def _tz(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


class AggregationPush(WMModel, table=True):
    """One processed push; `result` is replayed verbatim when the same push arrives again."""

    __tablename__ = "aggregation_push"
    __table_args__ = (
        UniqueConstraint("kind", "aggregation_id"),
        # The late-push check (latest of a kind) and the retention's oldest pushes.
        Index("ix_aggregation_push_kind_generated_at", "kind", "generated_at"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    kind: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    aggregation_id: str = Field(sa_column=Column(String(200), nullable=False))
    generated_at: datetime = _tz()
    received_at: datetime = _tz()
    entries: int = Field(sa_column=Column(Integer, nullable=False))
    critical_entries: int = Field(sa_column=Column(Integer, nullable=False))
    opened: int = Field(sa_column=Column(Integer, nullable=False))
    updated: int = Field(sa_column=Column(Integer, nullable=False))
    cleared: int = Field(sa_column=Column(Integer, nullable=False))
    unchanged: int = Field(sa_column=Column(Integer, nullable=False))
    result: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class PushPlan(WMModel, table=True):
    """Revisions a big push decided but has not written yet (services/push_plan.py): one
    row per chunk, deleted in the transaction that writes its revisions. Rows left by a
    restart are written by the next start, or by the next push of the kind first."""

    __tablename__ = "push_plan"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    push_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    # The pushed kind, whose lock (push_plan.lock_kind) a chunk is written under.
    push_kind: str = Field(sa_column=Column(String(32), nullable=False))
    revisions: int = Field(sa_column=Column(Integer, nullable=False))
    # The chunk's msgpack (push_plan.PlanChunk).
    plan: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _tz()


class CriticalSample(WMModel, table=True):
    """A critical sample seen in the window; the key makes a repeated sample count once."""

    __tablename__ = "critical_sample"

    kind: str = Field(sa_column=Column(String(32), primary_key=True))
    entity_id: str = Field(sa_column=Column(String(200), primary_key=True))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    value: float = Field(sa_column=Column(Float, nullable=False))
    # aggregation_push.id. The push's bulk writes reference rows of their own transaction, so
    # no foreign key is checked row by row (migration wm_0011); retention deletes children
    # before their parents.
    push_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))


class Ticket(WMModel, table=True):
    """One ticket per (kind, entity) problem; a problem that returns after a clear is a new one."""

    __tablename__ = "ticket"
    __table_args__ = (
        # The retention's cleared tickets, oldest first.
        Index("ix_ticket_cleared_at", "cleared_at", postgresql_where=text("state = 'cleared'")),
    )

    id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    kind: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    entity_id: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    # Not indexed (migration wm_0015): no query looks a ticket up by it (a push finds its
    # kind's open tickets by kind and state; open_key keeps one open ticket per key).
    dedup_key: str = Field(sa_column=Column(String(240), nullable=False))
    # The dedup key while open, NULL once cleared: a plain unique constraint (NULLs are
    # distinct) then allows exactly one open ticket per dedup key.
    open_key: str | None = Field(default=None, sa_column=Column(String(240), unique=True))
    state: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    category: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    priority: str = Field(sa_column=Column(String(2), nullable=False))
    subscribers: int | None = Field(default=None, sa_column=Column(Integer))
    # Where it is, for the ticket list's filters. The ticket's JSON is its latest revision's
    # (ticket_revision.payload): not copied here.
    market: str | None = Field(default=None, sa_column=Column(String(200), index=True))
    hub: str | None = Field(default=None, sa_column=Column(String(200), index=True))
    opened_at: datetime = _tz(index=True)
    updated_at: datetime = _tz(index=True)
    cleared_at: datetime | None = _tz(nullable=True)
    # The maintenance window whose start was noted on this ticket, until its end is noted
    # (services/lifecycle.py): one note each way, whatever the number of pushes between.
    maintenance_window_id: int | None = Field(default=None, sa_column=Column(BigInteger))


class TicketRevision(WMModel, table=True):
    """Every revision of a ticket with the exact ticket JSON built for it."""

    __tablename__ = "ticket_revision"
    __table_args__ = (UniqueConstraint("ticket_id", "revision"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    # ticket.id and aggregation_push.id, unchecked like critical_sample.push_id.
    ticket_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    action: str = Field(sa_column=Column(String(8), nullable=False))
    priority: str = Field(sa_column=Column(String(2), nullable=False))
    push_id: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    # The document as built, stored as `json` text: only ever read whole (migration wm_0010).
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # The push's generated_at (the domain's clock): retention finds old revisions by it.
    created_at: datetime = _tz(index=True)


# The platform numbers a BE reports on a delivery: a ticket shows the newest known of each
# (services/tickets.py), which retention keeps (services/retention.py).
PLATFORM_NUMBERS = ("incident_public_id", "incident_rec_id", "work_order_id", "work_order_number")


class TicketDelivery(WMModel, table=True):
    """Outbox: one row per revision, written with it; the distribution workers deliver it."""

    __tablename__ = "ticket_delivery"
    __table_args__ = (
        # One row per revision: a report's revision, a ticket's latest delivery and its
        # revisions' deliveries are found by this key (migration wm_0016).
        UniqueConstraint("ticket_id", "revision"),
        # Platform numbers are NULL until a BE reports them: those rows are left out.
        Index(
            "ix_ticket_delivery_incident_public_id",
            "incident_public_id",
            postgresql_where=text("incident_public_id IS NOT NULL"),
        ),
        Index(
            "ix_ticket_delivery_work_order_number",
            "work_order_number",
            postgresql_where=text("work_order_number IS NOT NULL"),
        ),
        # Half of each page free: a claim leases a run of consecutive rows, and its update
        # stays HOT (no index entries) only if every row's new version fits on its page.
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    # ticket_revision.id, unchecked like critical_sample.push_id; one per revision, which
    # the unique (ticket_id, revision) above ensures.
    revision_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    ticket_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    dedup_key: str = Field(sa_column=Column(String(240), nullable=False, index=True))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    # (The ticket JSON it sends is its revision's: ticket_revision.payload.)
    backend_name: str | None = Field(default=None, sa_column=Column(String(200), index=True))
    status: str = Field(
        default="pending",
        sa_column=Column(String(16), nullable=False, server_default=text("'pending'")),
    )
    attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    next_attempt_at: datetime | None = _tz(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(String))
    assigned_at: datetime | None = _tz(nullable=True)
    delivered_at: datetime | None = _tz(nullable=True)
    created_at: datetime = _tz()
    # The lease of the sender sending the row right now (distribution/delivery.py): no
    # other sender takes the row, and no failover moves it, until claimed_until passes.
    claimed_by: str | None = Field(default=None, sa_column=Column(String(200)))
    claimed_until: datetime | None = _tz(nullable=True)
    # Where the revision stands end to end (ticketing_common.outcome.DELIVERY_STAGES):
    # pending until a BE accepted it, then what that BE's outcome reports say
    # (wm_service/distribution/reports.py). report_seq is the newest report applied.
    stage: str = Field(
        default="pending",
        sa_column=Column(String(16), nullable=False, index=True, server_default=text("'pending'")),
    )
    report_seq: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    # The backend's ownership generation this revision was sent under (distribution/
    # fencing.py); NULL for a backend that is not fenced (registered by hand).
    generation: int | None = Field(default=None, sa_column=Column(BigInteger))
    # The backend it was taken from by a failover (or a BE's `moved` report), and when.
    moved_from: str | None = Field(default=None, sa_column=Column(String(200)))
    moved_at: datetime | None = _tz(nullable=True)
    incident_public_id: str | None = Field(default=None, sa_column=Column(String(64)))
    incident_rec_id: str | None = Field(default=None, sa_column=Column(String(64)))
    work_order_id: str | None = Field(default=None, sa_column=Column(String(64)))
    work_order_number: str | None = Field(default=None, sa_column=Column(String(64)))
    outcome_operation: str | None = Field(default=None, sa_column=Column(String(32)))
    outcome_error: str | None = Field(default=None, sa_column=Column(Text))
    outcome_at: datetime | None = _tz(nullable=True)


class MaintenanceWindow(WMModel, table=True):
    """Planned work: a scope in the hierarchy and a time window, maybe recurring.

    Scope fields are AND-ed (services/maintenance.py). Never deleted for real: `deleted_at`
    stops it from counting while the suppressions it recorded keep their window.
    """

    __tablename__ = "maintenance_window"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    market: str | None = Field(default=None, sa_column=Column(String(200)))
    hub: str | None = Field(default=None, sa_column=Column(String(200)))
    ccap: str | None = Field(default=None, sa_column=Column(String(200)))
    service_group: str | None = Field(default=None, sa_column=Column(String(200)))
    entity_id: str | None = Field(default=None, sa_column=Column(String(200)))
    starts_at: datetime = _tz()
    ends_at: datetime = _tz()
    recurrence: str | None = Field(default=None, sa_column=Column(String(200)))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    reason: str = Field(sa_column=Column(String(500), nullable=False))
    change_ref: str | None = Field(default=None, sa_column=Column(String(100)))
    created_by: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: datetime = _tz()
    updated_by: str = Field(sa_column=Column(String(100), nullable=False))
    updated_at: datetime = _tz()
    ended_at: datetime | None = _tz(nullable=True)
    deleted_at: datetime | None = _tz(nullable=True, index=True)


class MaintenanceSuppression(WMModel, table=True):
    """A decision a maintenance window held back: what would have happened, and at which push."""

    __tablename__ = "maintenance_suppression"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    window_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey("maintenance_window.id"), nullable=False, index=True
        )
    )
    push_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("aggregation_push.id"), nullable=False, index=True)
    )
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    entity_id: str = Field(sa_column=Column(String(200), nullable=False))
    dedup_key: str = Field(sa_column=Column(String(240), nullable=False))
    action: str = Field(sa_column=Column(String(8), nullable=False))
    reason: str = Field(sa_column=Column(String(64), nullable=False))
    priority: str = Field(sa_column=Column(String(2), nullable=False))
    critical_samples: int = Field(sa_column=Column(Integer, nullable=False))
    worst_value: float | None = Field(default=None, sa_column=Column(Float))
    decided_at: datetime = _tz()


class TopologyElement(WMModel, table=True):
    """Inventory: an entity or a service group with its place in the network and subscribers."""

    __tablename__ = "topology_element"

    element_id: str = Field(sa_column=Column(String(200), primary_key=True))
    market: str | None = Field(default=None, sa_column=Column(String(200)))
    hub: str | None = Field(default=None, sa_column=Column(String(200)))
    ccap: str | None = Field(default=None, sa_column=Column(String(200)))
    service_group: str | None = Field(default=None, sa_column=Column(String(200)))
    channel: str | None = Field(default=None, sa_column=Column(String(200)))
    subscribers: int | None = Field(default=None, sa_column=Column(Integer))
    updated_at: datetime = _tz()


class WMSetting(WMModel, table=True):
    """Run-time rule settings changed over the API (one JSON document per name)."""

    __tablename__ = "wm_setting"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    value: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    updated_at: datetime = _tz()


class ControlAction(WMModel, table=True):
    """One operator action the WM carried out on the BEs (pause, resume, re-drive): who asked,
    when, with which filters, and what each BE answered."""

    __tablename__ = "control_action"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    at: datetime = _tz(index=True)
    actor: str = Field(sa_column=Column(String(200), nullable=False))
    action: str = Field(sa_column=Column(String(32), nullable=False))
    request: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    result: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
