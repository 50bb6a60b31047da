"""WM settings from the environment (prefix WM_): database, tokens, limits of a push.

Rules that operators tune at run time (thresholds, window, count) are not here: they live in
the database behind GET/PATCH /api/v1/settings (see services/settings.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticketing_common.logging import LogFormat


class WMSettings(BaseSettings):
    """Process settings of the WM. Tokens have no default: an unset token locks its endpoints."""

    model_config = SettingsConfigDict(env_prefix="WM_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres URL; unset = embedded Postgres under data_dir.",
    )
    data_dir: Path = Field(default=Path(".data"), description="Folder of the embedded Postgres.")
    database_name: str = Field(default="wm", description="Database name on the embedded server.")
    database_wait_seconds: float = Field(
        default=60.0, ge=0, description="How long a start waits for an unreachable database."
    )
    ingest_token: SecretStr | None = Field(
        default=None, description="Bearer token of the aggregator (pushes only)."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of operators (every endpoint, pushes included)."
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token of Prometheus: /metrics only (admin works too)."
    )
    backend_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token of the BEs (their BE_WM_TOKEN): self-registration, heartbeat and "
            "outcome reports only."
        ),
    )
    max_push_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024, description="Largest accepted push body (413 above)."
    )
    clock_skew_seconds: int = Field(
        default=300, ge=0, le=3600, description="How far in the future a timestamp may be."
    )
    push_chunk_revisions: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="A push that changes more tickets than this answers once it has decided, "
        "and writes them in chunks of this many afterwards (delivery starts with the first).",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: LogFormat = Field(
        default="text", description="text (one readable line) or json (one object per line)."
    )

    # Distribution (WM → BE), see wm_service/distribution/.
    distribution_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Ticket revisions per POST to a BE."
    )
    backend_timeout_seconds: float = Field(
        default=30, gt=0, description="A BE is available while heartbeat or probe is this recent."
    )
    failover_after_seconds: float = Field(
        default=60,
        ge=0,
        description="A BE unavailable this long loses its unfinished revisions to the others; "
        "must exceed WM_BACKEND_LEASE_SECONDS + WM_BACKEND_MAX_CALL_SECONDS.",
    )
    backend_lease_seconds: float = Field(
        default=20,
        gt=0,
        description="Each heartbeat answer lets a BE call the platforms this long; a BE that "
        "cannot renew it stops (fencing, docs/contracts.md §5). Keep BE_HEARTBEAT_SECONDS "
        "well under it.",
    )
    backend_max_call_seconds: float = Field(
        default=35,
        gt=0,
        description="The longest platform call a BE may make: a call still running at the "
        "end of its lease ends by then (the BE enforces it).",
    )
    distribution_poll_seconds: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="Pause between distribution passes (a push wakes it at once); after 5 s "
        "without a row to assign or send, at least 1 s.",
    )
    backend_probe_interval_seconds: float = Field(
        default=5, gt=0, description="How often each BE's /readyz is probed."
    )
    backend_probe_timeout_seconds: float = Field(
        default=5, gt=0, description="Timeout of one /readyz probe."
    )
    delivery_concurrency: int = Field(
        default=4, ge=1, le=64, description="Concurrent batches in flight per BE."
    )
    delivery_request_timeout_seconds: float = Field(
        default=30, gt=0, description="Timeout of one batch POST to a BE."
    )
    delivery_backoff_base_seconds: float = Field(
        default=1, gt=0, description="First retry delay after a failed batch (then doubled)."
    )
    delivery_backoff_cap_seconds: float = Field(
        default=60, gt=0, description="Longest retry delay after failed batches."
    )

    # Retention (wm_service/services/retention.py).
    retention_days: float = Field(
        default=30,
        gt=0,
        description="Cleared tickets, pushes and control actions older than this are pruned.",
    )
    retention_interval_seconds: float = Field(
        default=300, gt=0, description="How often the retention pass runs."
    )
    retention_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Rows deleted per retention transaction."
    )

    @model_validator(mode="after")
    def _failover_waits_for_the_fence(self) -> Self:
        # A silent BE may still be calling the platforms until its lease ends plus one call:
        # failing it over sooner would let two BEs work on one element (issue 9).
        fenced_for = self.backend_lease_seconds + self.backend_max_call_seconds
        if self.failover_after_seconds <= fenced_for:
            raise ValueError(
                f"WM_FAILOVER_AFTER_SECONDS ({self.failover_after_seconds:g}) must exceed "
                f"WM_BACKEND_LEASE_SECONDS + WM_BACKEND_MAX_CALL_SECONDS ({fenced_for:g}): "
                "a silent BE may still be calling the platforms until then"
            )
        return self
