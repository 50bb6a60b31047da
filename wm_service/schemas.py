"""Request and response shapes of the WM's REST API (pydantic, part of the OpenAPI document).

The ticket document is the shared contract with the BEs (ticketing_common/contract.py,
docs/contracts.md §1); push bodies are decoded by services/push_decode.py, not here, for speed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt

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
    group_min_channels: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Critical SNR channels of one service group that open one group ticket "
        "instead of one ticket each (0: off).",
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
    group_min_channels: StrictInt | None = Field(default=None, ge=0, le=1000)
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
    suppressed: int = Field(
        default=0, description="Decisions held back by maintenance windows (see their /suppressed)."
    )
    revisions_to_write: int = Field(
        default=0,
        description="Of this push's ticket revisions, how many are still to be written, as "
        "of this answer: a push changing more than WM_PUSH_CHUNK_REVISIONS tickets answers "
        "once it has decided, and writes them right after, in chunks (the counts above are "
        "final either way). 0 once written.",
    )


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
    generation: int | None = Field(description="The BE's ownership generation it was sent under.")
    moved_from: str | None = Field(
        description="The BE a failover (or that BE's `moved` report) took it back from."
    )
    moved_at: datetime | None
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
    reason: str | None = Field(
        default=None, description="Why the WM made it (the ticket document's reason)."
    )
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
    outcome_at: datetime | None = Field(
        description="When the BE reported the latest revision's stage (e.g. completed)."
    )


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page.")
    counts: dict[str, int] = Field(
        description="Tickets per state matching kind/category/entity (the state filter aside)."
    )


class TicketDetail(TicketSummary):
    ticket: TicketDocument = Field(description="The current ticket JSON (latest revision).")
    revisions: list[RevisionPublic]


# --- maintenance windows ----------------------------------------------------------------------

_SCOPE = Field(default=None, min_length=1, max_length=200)


class MaintenanceScope(BaseModel):
    """Where planned work is: every field given must match an element's (at least one)."""

    model_config = ConfigDict(extra="forbid")

    market: str | None = _SCOPE
    hub: str | None = _SCOPE
    ccap: str | None = _SCOPE
    service_group: str | None = _SCOPE
    entity_id: str | None = _SCOPE


class MaintenanceWindowBase(MaintenanceScope):
    """Planned work: a scope and a time window, maybe recurring."""

    starts_at: AwareDatetime = Field(description="Start of the (first) occurrence.")
    ends_at: AwareDatetime = Field(description="End of the (first) occurrence; ≤ 7 days later.")
    recurrence: str | None = Field(
        default=None,
        max_length=200,
        description="RRULE subset: FREQ=DAILY|WEEKLY, INTERVAL, BYDAY, COUNT, UNTIL (local).",
        examples=["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=TU,TH"],
    )
    timezone: str = Field(
        default="America/Mexico_City",
        max_length=64,
        description="IANA zone in which a recurring window keeps its wall-clock hours.",
    )
    reason: str = Field(min_length=1, max_length=500)
    change_ref: str | None = Field(
        default=None, max_length=100, description="The operator's change ticket."
    )


class MaintenanceWindowCreate(MaintenanceWindowBase):
    created_by: str = Field(min_length=1, max_length=100, description="Who asks for the window.")


class MaintenanceWindowUpdate(MaintenanceScope):
    """Partial change: only the given fields change; the result is validated as a whole."""

    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    recurrence: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, min_length=1, max_length=500)
    change_ref: str | None = Field(default=None, max_length=100)
    updated_by: str = Field(min_length=1, max_length=100, description="Who changes the window.")


class MaintenanceWindowEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ended_by: str = Field(min_length=1, max_length=100)


class MaintenanceWindowPublic(MaintenanceWindowBase):
    model_config = ConfigDict(extra="ignore")

    id: int
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    ended_at: datetime | None = Field(
        default=None, description="Ended early at this instant (no later use)."
    )
    deleted_at: datetime | None = None
    active: bool = Field(description="Covers its scope right now.")


class MaintenanceImportResult(BaseModel):
    created: list[MaintenanceWindowPublic]


class SuppressedPublic(BaseModel):
    """A decision a window held back: what would have happened to which ticket, at which push."""

    aggregation_id: str
    kind: StoredKind
    entity_id: str
    dedup_key: str
    action: Action
    reason: str
    priority: Priority
    critical_samples: int
    worst_value: float | None
    decided_at: datetime


class SuppressedPage(BaseModel):
    items: list[SuppressedPublic]
    next_cursor: str | None
