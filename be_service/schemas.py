"""Request and response bodies of the BE's REST API; the ticket itself is the shared contract.

Intake takes `ticketing_common.contract.TicketDocument` (docs/contracts.md §1), so WM and BE
validate one model; strict where a client could cause harm (the settings patch).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from ticketing_common.contract import TicketDocument
from ticketing_common.outcome import INT64_MAX

MAX_TICKETS_PER_INTAKE = 10_000
# Revisions are stored in a Postgres integer column (and subscribers are one on the WM): a
# larger value is a 422 here, not a driver error (a 500) at the insert.
PG_INTEGER_MAX = 2**31 - 1


class TicketBatchIn(BaseModel):
    generation: int | None = Field(
        default=None,
        ge=0,
        le=INT64_MAX,
        description="The WM's ownership generation of this delivery; echoed in the reports.",
    )
    tickets: list[TicketDocument] = Field(max_length=MAX_TICKETS_PER_INTAKE)


class IntakeResult(BaseModel):
    accepted: int
    duplicates: int


class SettingsUpdate(BaseModel):
    """PATCH body: any subset of the run-time settings; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    processing_enabled: StrictBool | None = None
    max_retries: StrictInt | None = Field(default=None, ge=0, le=100)
    max_tickets_per_request: StrictInt | None = Field(default=None, ge=1, le=200)


class ConnectionSettings(BaseModel):
    """The non-secret part of the environment configuration, for operators."""

    name: str
    public_url: str
    cherwell_url: str
    cherwell_client_id: str
    cherwell_username: str
    sfyc_url: str
    sfyc_client_id: str
    sfyc_api_version: str
    sfyc_external_id_field: str
    connect_timeout_seconds: float
    request_timeout_seconds: float
    bypass_proxy: bool
    workers: int
    workers_max: int
    wm_url: str | None


class SettingsPublic(BaseModel):
    processing_enabled: bool
    max_retries: int
    max_tickets_per_request: int
    updated_at: datetime
    connection: ConnectionSettings


class AttemptPublic(BaseModel):
    at: datetime
    operation: str
    retry_round: int
    ok: bool
    http_status: int | None
    response: str | None
    error: str | None


# The API's names for platform ids (kept from when they were columns) → where they live in
# a revision's platform_ids.
_LEGACY_ID_FIELDS = {
    "cherwell_rec_id": ("cherwell", "rec_id"),
    "cherwell_public_id": ("cherwell", "public_id"),
    "sfyc_id": ("sfyc", "id"),
    "sfyc_work_order_number": ("sfyc", "number"),
}


class RevisionSummary(BaseModel):
    ticket_id: uuid.UUID
    revision: int
    dedup_key: str
    action: str
    kind: str
    category: str
    priority: str
    status: str
    step: str
    retry_round: int
    cherwell_rec_id: str | None
    cherwell_public_id: str | None
    sfyc_id: str | None
    sfyc_work_order_number: str | None
    last_error: str | None
    received_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @model_validator(mode="before")
    @classmethod
    def _ids_from_platform_ids(cls, data: Any) -> Any:
        """Built from a TicketRevision row: its platform ids become the four id fields."""
        ids = getattr(data, "platform_ids", None)
        if ids is None:
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        for name, (platform, key) in _LEGACY_ID_FIELDS.items():
            values[name] = (ids.get(platform) or {}).get(key)
        return values


class RevisionDetail(RevisionSummary):
    ticket: dict[str, object]
    attempts: list[AttemptPublic]


class TicketPage(BaseModel):
    items: list[RevisionSummary]
    next_cursor: str | None
    counts: dict[str, int]


class TicketDetail(BaseModel):
    ticket_id: uuid.UUID
    dedup_key: str
    revisions: list[RevisionDetail]


class RetryResult(BaseModel):
    retried: int


class PlatformHealthPublic(BaseModel):
    """One platform as this BE sees it: its circuit and its last answers."""

    platform: str
    circuit: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure: str | None
    logged_in: bool | None = Field(description="Last login's outcome; null before the first.")
    next_probe_in_seconds: float | None = Field(
        description="While the circuit is not closed: seconds until the next trial."
    )


class OutcomeReportPublic(BaseModel):
    """One outcome report not yet acknowledged by the WM (be_service/reports.py)."""

    id: int
    ticket_id: uuid.UUID
    revision: int
    seq: int
    stage: str
    created_at: datetime
    refused_at: datetime | None = Field(
        description="When it was last refused as invalid; null while it waits its turn."
    )
    refusal: str | None = Field(description="Which fields, and why, as last refused.")


class OutcomeReportPage(BaseModel):
    """The outbox of outcome reports: how many wait, how many are set aside, the oldest."""

    waiting: int
    refused: int
    oldest_waiting_seconds: float = Field(description="0 when none waits.")
    reports: list[OutcomeReportPublic]
