"""Tables of the distribution part of the WM: the registry of BE instances.

The outbox itself (`ticket_delivery`) belongs to the WM core (wm_service.models), which writes
one row per ticket revision; distribution only assigns, sends and marks those rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Sequence, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, col

from wm_service.models import TicketDelivery, WMModel

GENERATION_SEQUENCE = Sequence("backend_generation_seq", metadata=WMModel.metadata)


class Backend(WMModel, table=True):
    """One registered BE instance: where to send its tickets and when it was last healthy."""

    __tablename__ = "backend"

    name: str = Field(primary_key=True, max_length=63)
    url: str = Field(max_length=2048)
    # Needed in clear to call the BE; never returned by the API nor logged.
    intake_token: str = Field(max_length=512)
    # Opens the BE's pause/resume/re-drive endpoints (BE_CONTROL_TOKEN); never returned.
    control_token: str | None = Field(default=None, max_length=512)
    registered_at: datetime = Field(sa_type=DateTime(timezone=True))
    # The BE's last heartbeat: a PUT with the backend token. NULL for a backend registered
    # by hand (admin token) that never heartbeated: it is available once a probe succeeds.
    last_seen_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_probe_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_probe_ok_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_probe_error: str | None = Field(default=None, max_length=500)
    # What the BE said of itself with its last heartbeat (platforms, backlog), and when.
    health: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    health_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Ownership fencing (distribution/fencing.py): every delivery carries the generation it
    # was sent under, and a failover bumps it, so a BE that comes back knows which of its
    # revisions moved elsewhere. From one sequence: it never goes backwards, not even for a
    # backend deleted and registered again.
    generation: int = Field(
        default=None,
        sa_column=Column(
            BigInteger,
            GENERATION_SEQUENCE,
            nullable=False,
            server_default=GENERATION_SEQUENCE.next_value(),
        ),
    )
    # The last failover: when, and the heartbeat it was the end of (one bump per silence).
    failed_over_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    failed_over_seen_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# Partial indexes on the outbox for the distribution's hot queries: a sender's claim (pending
# rows of one backend, oldest first) and the per-key ordering check (older pending revisions
# of a dedup key). Declared here, beside the queries that need them.
Index(
    "ix_ticket_delivery_pending_backend",
    col(TicketDelivery.backend_name),
    col(TicketDelivery.id),
    postgresql_where=text("status = 'pending'"),
)
Index(
    "ix_ticket_delivery_pending_key",
    col(TicketDelivery.dedup_key),
    col(TicketDelivery.id),
    postgresql_where=text("status = 'pending'"),
)
