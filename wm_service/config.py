"""WM settings from the environment (prefix WM_): database, tokens, limits of a push.

Rules that operators tune at run time (thresholds, window, count) are not here: they live in
the database behind GET/PATCH /api/v1/settings (see services/settings.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class WMSettings(BaseSettings):
    """Process settings of the WM. Tokens have no default: an unset token locks its endpoints."""

    model_config = SettingsConfigDict(env_prefix="WM_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres URL; unset = embedded Postgres under data_dir.",
    )
    data_dir: Path = Field(default=Path(".data"), description="Folder of the embedded Postgres.")
    database_name: str = Field(default="wm", description="Database name on the embedded server.")
    ingest_token: SecretStr | None = Field(
        default=None, description="Bearer token of the aggregator (pushes only)."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of operators (every endpoint, pushes included)."
    )
    max_push_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024, description="Largest accepted push body (413 above)."
    )
    clock_skew_seconds: int = Field(
        default=300, ge=0, le=3600, description="How far in the future a timestamp may be."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
