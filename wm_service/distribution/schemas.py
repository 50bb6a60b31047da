"""Request and response shapes of the backend registry API (/api/v1/backends).

The BE's self-registration sends `BackendRegistration` (docs/contracts.md §5); operators read
`BackendList`. The intake token goes in and never comes out.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ticketing_common.outcome import BackendHealthReport

# A DNS-label-like name: safe in URLs, logs and metrics.
BACKEND_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")


class BackendRegistration(BaseModel):
    """Body of PUT /api/v1/backends/{name}: where the BE takes tickets and with which token.

    Fields this WM does not know are ignored, not refused: a BE upgraded before its WM (a
    rolling upgrade) keeps heartbeating instead of dropping out of the distribution."""

    model_config = ConfigDict(extra="ignore")

    url: Annotated[AnyHttpUrl, Field(max_length=2048)] = Field(
        description="Base URL of the BE; tickets go to {url}/api/v1/tickets.",
        examples=["http://127.0.0.1:8101"],
    )
    intake_token: Annotated[SecretStr, Field(min_length=1, max_length=512)] = Field(
        description="Bearer token the BE expects on its intake; stored, never returned.",
    )
    control_token: Annotated[SecretStr | None, Field(min_length=1, max_length=512)] = Field(
        default=None,
        description="Bearer token of the BE's pause, resume and re-drive endpoints, for the "
        "WM to use on an operator's behalf; stored, never returned.",
    )
    health: BackendHealthReport | None = Field(
        default=None, description="The BE's own health (heartbeats with the backend token)."
    )

    @field_validator("intake_token", "control_token")
    @classmethod
    def _fits_a_header(cls, token: SecretStr | None) -> SecretStr | None:
        # Sent back to the BE in an Authorization header: anything else could never be used.
        if token is not None and not _HEADER_TOKEN.fullmatch(token.get_secret_value()):
            raise ValueError("must be printable ASCII without spaces (it is sent in a header)")
        return token


class DeliveryCounts(BaseModel):
    """Ticket revisions of one backend in the outbox."""

    assigned: int = Field(description="Revisions currently assigned to this backend.")
    pending: int = Field(description="Assigned and not yet acknowledged by the BE.")
    delivered: int = Field(description="Acknowledged (2xx) by this backend.")


class LeaseGrant(BaseModel):
    """The answer to a heartbeat (docs/contracts.md §5): the BE may call the platforms for
    `lease_seconds` from when it sent the heartbeat, each call at most `max_call_seconds`,
    and only for the revisions delivered under `generation`."""

    generation: int
    lease_seconds: float
    max_call_seconds: float


class BackendState(BaseModel):
    """A registered backend (no token): what GET and the answer to a PUT both show."""

    name: str
    url: str
    available: bool = Field(
        description="Heartbeat or successful /readyz probe within WM_BACKEND_TIMEOUT_SECONDS."
    )
    registered_at: datetime
    last_seen_at: datetime | None = Field(
        description="Last heartbeat (a PUT with the backend token); null for a backend "
        "registered by hand that never sent one."
    )
    last_probe_at: datetime | None
    last_probe_ok_at: datetime | None
    last_probe_error: str | None
    health: BackendHealthReport | None = Field(description="Sent with the last heartbeat.")
    health_at: datetime | None
    fenced: bool = Field(
        description="Heartbeats, so it holds a lease and a generation (docs/contracts.md §5); "
        "a backend registered by hand and only probed is not fenced."
    )
    generation: int | None = Field(
        description="Its ownership generation: bumped by each failover (fenced backends)."
    )
    failed_over_at: datetime | None = Field(description="Its last failover, if any.")


class BackendPublic(BackendState):
    """A registered backend as operators see it, with its revisions in the outbox."""

    tickets: DeliveryCounts


class BackendRegistered(BackendState):
    """The answer to PUT /api/v1/backends/{name}: the backend as GET shows it, except that
    the answer to the BE's own heartbeat carries its lease and leaves its ticket counts out
    (a heartbeat comes every few seconds, and counting reads all of them each time)."""

    tickets: DeliveryCounts | None = Field(description="Null in the answer to a heartbeat.")
    lease: LeaseGrant | None = Field(
        default=None, description="Only in the answer to the BE's own heartbeat."
    )


class BackendList(BaseModel):
    """Every registered backend, and the revisions waiting for any backend to be available."""

    backends: list[BackendPublic]
    unassigned: int = Field(description="Pending revisions not assigned to any backend yet.")
