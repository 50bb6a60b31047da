"""The ticket document: the one contract between the WM (which builds it) and the BEs.

One pydantic model, imported by both services, so it shows in both OpenAPI documents and a
change to it is one change. Versioned by `schema_version`; a document without it is a
version-1 document (the shape sent before the field existed). Extra fields are allowed and
kept, so a newer WM never makes an older BE reject a batch.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Action = Literal["open", "update", "clear"]
Priority = Literal["P1", "P2", "P3", "P4"]

# Limits the BE relies on: its columns and the platforms' field sizes. The WM cuts texts to
# fit (wm_service/services/ticket_document.py) rather than build a document the BE refuses.
TITLE_MAX = 255
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
DEDUP_KEY_MAX = 300
# Kinds and categories are open sets: a WM with a new kind must not make an old BE answer
# 422 to every batch, so the BE checks only that they are short, non-empty text.
KIND_MAX = 64
CATEGORY_MAX = 64
INT32_MAX = 2_147_483_647


class Location(BaseModel):
    model_config = ConfigDict(extra="allow")

    market: str | None = None
    hub: str | None = None
    ccap: str | None = None
    service_group: str | None = None
    channel: str | None = None
    missing_location: bool = Field(
        default=False,
        description="True when market, hub or CCAP is unknown to both the push and the inventory.",
    )


class WorkOrderText(BaseModel):
    model_config = ConfigDict(extra="allow")

    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    description: str = Field(max_length=DESCRIPTION_MAX)


class TicketDocument(BaseModel):
    """One revision of one ticket, as the WM sends it to a BE (docs/contracts.md §1)."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    ticket_id: uuid.UUID
    dedup_key: str = Field(
        min_length=1, max_length=DEDUP_KEY_MAX, examples=["snr-upstream:MTY01-CCAP02:US-3/0/1"]
    )
    revision: int = Field(ge=1, le=INT32_MAX)
    action: Action
    kind: str = Field(min_length=1, max_length=KIND_MAX, examples=["snr-upstream"])
    category: str = Field(min_length=1, max_length=CATEGORY_MAX, examples=["SNR"])
    priority: Priority
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    description: str = Field(max_length=DESCRIPTION_MAX)
    location: Location
    subscribers: int | None = Field(default=None, ge=0, le=INT32_MAX)
    work_order: WorkOrderText
    generated_at: AwareDatetime = Field(description="When the WM built this revision.")
    reason: str | None = Field(
        default=None,
        max_length=200,
        description="Why the WM decided this revision (critical, new_samples, recovered, …).",
    )
    # What the WM knew when it decided; informational for the BE (kept, never required).
    entity_id: str | None = None
    critical_samples: int | None = Field(
        default=None, description="Critical samples in the window at this revision."
    )
    worst_value: float | None = Field(default=None, description="Worst critical value.")
    unit: str | None = None
    threshold: float | None = Field(
        default=None, description="Critical threshold in force for this kind."
    )
    first_critical_at: AwareDatetime | None = None
    last_critical_at: AwareDatetime | None = None
    aggregation_id: str | None = Field(
        default=None, description="The push that produced this revision."
    )
