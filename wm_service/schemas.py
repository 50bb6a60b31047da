"""Request and response shapes of the WM's REST API (pydantic, part of the OpenAPI document).

The ticket document is the shared contract with the BEs (ticketing_common/contract.py,
docs/contracts.md §1); push bodies are decoded by services/push_decode.py, not here, for speed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from ticketing_common.contract import Action, Priority, TicketDocument
from ticketing_common.text import NulFree
from wm_service.kinds import Kind, StoredCategory, StoredKind

# --- settings -------------------------------------------------------------------------------


class Thresholds(BaseModel):
    """Sample classification limits. SNR: value < limit; utilisation: value ≥ limit.

    Strict numbers: JSON true/false are not limits (false stored 0 dB and silently turned
    SNR tickets off); an integer still is one.
    """

    critical: StrictFloat
    major: StrictFloat
    minor: StrictFloat


class RuleSettings(BaseModel):
    """The rule settings in force: read by every push, changed at run time."""

    window_hours: StrictInt = Field(ge=1, le=168, description="Critical-sample window before T.")
    min_critical_incidents: StrictInt = Field(
        ge=1, le=1000, description="Critical samples in the window that make an entry critical."
    )
    thresholds: dict[Kind, Thresholds]


class ThresholdsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    critical: StrictFloat | None = None
    major: StrictFloat | None = None
    minor: StrictFloat | None = None


class RuleSettingsPatch(BaseModel):
    """Partial change: only the given fields change; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    window_hours: StrictInt | None = Field(default=None, ge=1, le=168)
    min_critical_incidents: StrictInt | None = Field(default=None, ge=1, le=1000)
    thresholds: dict[Kind, ThresholdsPatch] | None = None


# --- pushes -----------------------------------------------------------------------------------


class TicketCounts(BaseModel):
    opened: int
    updated: int
    cleared: int
    unchanged: int


class PushResult(BaseModel):
    """What one push did; replayed verbatim when the same aggregation_id is pushed again."""

    aggregation_id: str
    kind: StoredKind
    generated_at: datetime
    received_at: datetime
    entries: int
    critical_entries: int
    tickets: TicketCounts


class PushPage(BaseModel):
    items: list[PushResult]
    next_cursor: str | None


# --- topology ---------------------------------------------------------------------------------


class TopologyElementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    element_id: NulFree = Field(min_length=1, max_length=200)
    market: NulFree | None = Field(default=None, max_length=200)
    hub: NulFree | None = Field(default=None, max_length=200)
    ccap: NulFree | None = Field(default=None, max_length=200)
    service_group: NulFree | None = Field(default=None, max_length=200)
    channel: NulFree | None = Field(default=None, max_length=200)
    # Stored in a Postgres integer column: larger is a 422 here, not a driver error later.
    subscribers: int | None = Field(default=None, ge=0, le=2_147_483_647)


class TopologyUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    elements: list[TopologyElementIn]


class TopologyResult(BaseModel):
    upserted: int


# --- tickets read API -------------------------------------------------------------------------


Stage = Literal["pending", "at_backend", "completed", "error", "moved"]


class DeliveryPublic(BaseModel):
    """A revision's way to its BE and, from the BE's outcome reports, what became of it."""

    backend_name: str | None
    status: str = Field(description="The WM's outbox: pending until the BE's 2xx, delivered.")
    stage: Stage = Field(description="End to end: pending, at_backend, completed, error, moved.")
    attempts: int
    assigned_at: datetime | None
    delivered_at: datetime | None
    report_seq: int = Field(description="Sequence number of the last outcome report applied.")
    generation: int | None
    incident_public_id: str | None
    incident_rec_id: str | None
    work_order_id: str | None
    work_order_number: str | None
    outcome_operation: str | None = Field(description="Of an error: the operation that failed.")
    outcome_error: str | None = Field(description="Of an error: the platform's message.")
    outcome_at: datetime | None


class RevisionPublic(BaseModel):
    revision: int
    action: Action
    priority: Priority
    created_at: datetime
    ticket: TicketDocument
    delivery: DeliveryPublic | None


class TicketSummary(BaseModel):
    id: uuid.UUID
    dedup_key: str
    kind: StoredKind
    entity_id: str
    category: StoredCategory
    state: Literal["open", "cleared"]
    revision: int
    priority: Priority
    subscribers: int | None
    opened_at: datetime
    updated_at: datetime
    cleared_at: datetime | None
    stage: Stage = Field(description="Stage of the latest revision's delivery.")
    backend: str | None = Field(description="The BE holding the latest revision.")
    incident_public_id: str | None = Field(description="Cherwell IncidentID, once known.")
    incident_rec_id: str | None
    work_order_id: str | None
    work_order_number: str | None = Field(description="SFyC WorkOrderNumber, once known.")
    last_error: str | None = Field(description="The latest revision's error, while in error.")
    last_error_operation: str | None


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page.")
    counts: dict[str, int] = Field(
        description="Tickets per state matching kind/category/entity (the state filter aside)."
    )


class TicketDetail(TicketSummary):
    ticket: TicketDocument = Field(description="The current ticket JSON (latest revision).")
    revisions: list[RevisionPublic]
