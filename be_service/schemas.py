"""Request and response bodies of the BE's REST API (ticket JSON per docs/contracts.md §1).

Strict where a client could cause harm (the ticket document, the settings patch) and
permissive where the contract allows it (extra ticket fields are kept verbatim).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

MAX_TICKETS_PER_INTAKE = 10_000
# Revisions are stored in a Postgres integer column (and subscribers are one on the WM): a
# larger value is a 422 here, not a driver error (a 500) at the insert.
PG_INTEGER_MAX = 2**31 - 1


class Location(BaseModel):
    model_config = ConfigDict(extra="allow")

    market: str | None = None
    hub: str | None = None
    ccap: str | None = None
    service_group: str | None = None
    channel: str | None = None
    missing_location: bool = False


class WorkOrderText(BaseModel):
    model_config = ConfigDict(extra="allow")

    subject: str = Field(min_length=1, max_length=255)
    description: str = Field(max_length=32_000)


class TicketIn(BaseModel):
    """One ticket revision as the WM builds it; unknown fields are stored with it."""

    model_config = ConfigDict(extra="allow")

    ticket_id: uuid.UUID
    dedup_key: str = Field(min_length=1, max_length=300)
    revision: int = Field(ge=1, le=PG_INTEGER_MAX)
    action: Literal["open", "update", "clear"]
    kind: Literal["snr-upstream", "us-service-group", "ds-service-group"]
    category: Literal["SNR", "Falla de Linea"]
    priority: Literal["P1", "P2", "P3", "P4"]
    title: str = Field(min_length=1, max_length=255)
    description: str = Field(max_length=32_000)
    location: Location
    subscribers: int | None = Field(default=None, ge=0, le=PG_INTEGER_MAX)
    work_order: WorkOrderText
    generated_at: AwareDatetime


class TicketBatchIn(BaseModel):
    tickets: list[TicketIn] = Field(max_length=MAX_TICKETS_PER_INTAKE)


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
