"""The outcome report: the contract by which a BE tells the WM where each revision stands.

One pydantic model, imported by both services (docs/contracts.md §10): the BE's reporter
validates what its outbox holds before sending, the WM validates the batches it applies.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ticketing_common.contract import INT32_MAX

Stage = Literal["at_backend", "completed", "error", "moved"]
# Stages of a delivery on the WM: reports bring the last four; `pending` is the WM's own
# (not yet accepted by a BE).
DELIVERY_STAGES: tuple[str, ...] = ("pending", "at_backend", "completed", "error", "moved")
INT64_MAX = 2**63 - 1
ID_MAX = 64  # a platform id or number
ERROR_MAX = 2000  # the platform's message, as shown to operators
MAX_REPORTS_PER_BATCH = 1000


class OutcomeReport(BaseModel):
    """One outcome of one revision; `seq` grows with every report of that revision."""

    model_config = ConfigDict(extra="allow")

    ticket_id: uuid.UUID
    revision: int = Field(ge=1, le=INT32_MAX)
    seq: int = Field(ge=1, le=INT32_MAX)
    stage: Stage
    generation: int | None = Field(
        default=None, ge=0, le=INT64_MAX, description="The delivery's generation, echoed."
    )
    incident_public_id: str | None = Field(default=None, max_length=ID_MAX)
    incident_rec_id: str | None = Field(default=None, max_length=ID_MAX)
    work_order_id: str | None = Field(default=None, max_length=ID_MAX)
    work_order_number: str | None = Field(default=None, max_length=ID_MAX)
    operation: str | None = Field(
        default=None, max_length=32, description="Of an error: the step that failed."
    )
    error: str | None = Field(
        default=None, max_length=ERROR_MAX, description="Of an error: the platform's message."
    )
    at: AwareDatetime


class ReportBatch(BaseModel):
    """Body of POST /api/v1/backends/{name}/reports."""

    model_config = ConfigDict(extra="forbid")

    reports: list[OutcomeReport] = Field(max_length=MAX_REPORTS_PER_BATCH)


class ReportResult(BaseModel):
    """The WM's acknowledgement: every report is either applied or ignored (stale, foreign)."""

    applied: int
    ignored: int


# --- the health a BE sends with each heartbeat (docs/contracts.md §5) -------------------------


class PlatformHealthReport(BaseModel):
    """One platform as the BE sees it: its circuit and its last answers."""

    model_config = ConfigDict(extra="allow")

    platform: str = Field(max_length=32)
    circuit: str = Field(max_length=16, description="closed, open or half_open")
    consecutive_failures: int = Field(ge=0)
    last_success_at: AwareDatetime | None = None
    last_failure_at: AwareDatetime | None = None
    last_failure: str | None = Field(default=None, max_length=ERROR_MAX)
    logged_in: bool | None = None


class BackendHealthReport(BaseModel):
    """What a BE says of itself with each heartbeat, so the WM never asks every BE."""

    model_config = ConfigDict(extra="allow")

    platforms: list[PlatformHealthReport] = Field(max_length=16)
    processing_enabled: bool
    revisions: dict[str, int] = Field(description="Revisions by status.", max_length=16)
    oldest_received_age_seconds: float = Field(ge=0)
    # Its outcome reports to the WM (docs/contracts.md §10); absent from an older BE.
    reports_waiting: int | None = Field(
        default=None, ge=0, description="Outcome reports waiting for the WM's ack."
    )
    reports_refused: int | None = Field(
        default=None, ge=0, description="Outcome reports refused as invalid and set aside."
    )
