"""Tables of the BE service's database (its own MetaData, see ticketing_common.db).

One row per received ticket revision (its durable state machine), one row per try of a
platform step on it, and the single row of run-time settings operators change.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from ticketing_common.contract import CATEGORY_MAX, KIND_MAX
from ticketing_common.db import make_model_base

if TYPE_CHECKING:
    # make_model_base returns a SQLModel subclass built at run time; mypy needs a static base.
    from sqlmodel import SQLModel as BEModel
else:
    BEModel = make_model_base("BEModel")


class Status(StrEnum):
    """What an operator sees; a Received revision may be claimed by a worker right now."""

    received = "Received"
    completed = "Completed"
    error = "Error"
    # Given up: a failover moved its element to another BE, which sends it (fence.py).
    moved = "Moved"


# A revision's `step` is the name of the platform step it waits for (the step list in
# be_service/platforms/registry.py); intake puts new revisions at the first one.
FIRST_STEP = "check"
DONE = "done"
STEP_NAME_MAX = 16  # ticket_revision.step and ticket_attempt.operation
# The history row an operator's retry request leaves among a revision's attempts.
OPERATOR_RETRY = "operator_retry"


def _tz(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _str(length: int, *, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(String(length), nullable=nullable))


class TicketRevision(BEModel, table=True):
    """One revision of a ticket as the WM sent it, and how far its delivery has got."""

    __tablename__ = "ticket_revision"
    __table_args__ = (
        UniqueConstraint("ticket_id", "revision"),
        # The claim query's candidates and its "earlier revision of the same key" probe.
        Index(
            "ix_ticket_revision_pending",
            "dedup_key",
            "id",
            postgresql_where=text("status = 'Received'"),
        ),
        # The claim's scan in id order over the Received revisions only.
        Index("ix_ticket_revision_received_id", "id", postgresql_where=text("status = 'Received'")),
        # Half of each page free: a row is ~2 KB, and the claim, step and report updates
        # stay HOT (on the page, no new index entries) only if a new version fits there.
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    # (Found through the unique (ticket_id, revision).)
    ticket_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    dedup_key: str = Field(sa_column=Column(String(300), nullable=False, index=True))
    action: str = Field(sa_column=Column(String(16), nullable=False))
    kind: str = Field(sa_column=Column(String(KIND_MAX), nullable=False))
    category: str = Field(sa_column=Column(String(CATEGORY_MAX), nullable=False, index=True))
    priority: str = Field(sa_column=Column(String(4), nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    step: str = Field(sa_column=Column(String(STEP_NAME_MAX), nullable=False))
    retry_round: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    claimed_by: str | None = _str(80)
    claimed_until: datetime | None = _tz(nullable=True)
    # Each platform's ids for this revision, by platform, e.g. {"cherwell": {"rec_id": …,
    # "public_id": …}, "sfyc": {"id": …, "number": …}}: written only from step outcomes.
    platform_ids: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_at: datetime = _tz()
    updated_at: datetime = _tz()
    completed_at: datetime | None = _tz(nullable=True)
    # The seq of the last outcome report written for this revision (be_service/reports.py).
    report_seq: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    # The WM's ownership generation sent with the delivery, echoed in every report (fencing).
    generation: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # The document's generated_at (the push's time): the domain clock retention ages by.
    generated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


class TicketAttempt(BEModel, table=True):
    """One try of one operation on one revision (or an operator's retry request)."""

    __tablename__ = "ticket_attempt"
    # Keyed by revision first: every lookup is by revision, in id order (migration be_0009).
    __table_args__ = (PrimaryKeyConstraint("revision_id", "id"),)

    # ticket_revision.id. Not a checked foreign key (migration be_0007): the check locked the
    # revision row for every attempt written; attempts are written only for revisions the
    # worker holds, and retention deletes them with their revision.
    revision_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    id: int | None = Field(default=None, sa_column=Column(BigInteger, autoincrement=True))
    retry_round: int = Field(sa_column=Column(Integer, nullable=False))
    operation: str = Field(sa_column=Column(String(STEP_NAME_MAX), nullable=False))
    at: datetime = _tz()
    ok: bool = Field(sa_column=Column(Boolean, nullable=False))
    http_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    response: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Of a failure: "ticket" (spends max_retries) or "platform" (an outage: it waits).
    cause: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))


class ReportStage(StrEnum):
    """Where a revision stands, as the WM shows it (docs/contracts.md §10)."""

    at_backend = "at_backend"
    completed = "completed"
    error = "error"
    moved = "moved"


class OutcomeReport(BEModel, table=True):
    """Outbox row: one outcome of one revision, written with the state change, deleted once
    the WM acknowledged it (be_service/reports.py); set aside, with why, if it was refused
    as invalid."""

    __tablename__ = "outcome_report"
    __table_args__ = (Index("ix_outcome_report_ticket_id", "ticket_id", "revision"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    ticket_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    stage: str = Field(sa_column=Column(String(16), nullable=False))
    body: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = _tz()
    refused_at: datetime | None = _tz(nullable=True)
    refusal: str | None = Field(default=None, sa_column=Column(Text))


class BESetting(BEModel, table=True):
    """The run-time settings: exactly one row (id 1), read by the workers before each batch."""

    __tablename__ = "be_setting"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("max_retries BETWEEN 0 AND 100", name="max_retries_range"),
        CheckConstraint(
            "max_tickets_per_request BETWEEN 1 AND 200", name="max_tickets_per_request_range"
        ),
    )

    id: int = Field(default=1, sa_column=Column(Integer, primary_key=True, autoincrement=False))
    processing_enabled: bool = Field(sa_column=Column(Boolean, nullable=False))
    max_retries: int = Field(sa_column=Column(Integer, nullable=False))
    max_tickets_per_request: int = Field(sa_column=Column(Integer, nullable=False))
    updated_at: datetime = _tz()
