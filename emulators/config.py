"""Emulator settings from the environment (prefix EMULATOR_): token lifetimes and credentials.

Read once by `emulators.app.create_app`; the platform modules get them from the app's state.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmulatorSettings(BaseSettings):
    """Process settings of the emulators. Unset credentials mean "accept any non-empty ones"."""

    model_config = SettingsConfigDict(env_prefix="EMULATOR_", extra="ignore")

    token_ttl_seconds: int = Field(
        default=1199, ge=1, description="Lifetime of a Cherwell access token (expires_in)."
    )
    refresh_token_ttl_seconds: int = Field(
        default=86_400, ge=1, description="Lifetime of a Cherwell refresh token (1440 min)."
    )
    sfyc_session_ttl_seconds: int = Field(
        default=7_200, ge=1, description="SFyC session timeout after the last use (2 h)."
    )
    cherwell_client_id: str | None = Field(default=None, description="Required client_id.")
    cherwell_username: str | None = Field(default=None, description="Required username.")
    cherwell_password: SecretStr | None = Field(
        default=None, description="Set to check Cherwell credentials (with id and username)."
    )
    sfyc_client_id: str | None = Field(default=None, description="Required SFyC client_id.")
    sfyc_client_secret: SecretStr | None = Field(
        default=None, description="Set to check SFyC credentials (with client_id)."
    )
    sfyc_external_id_fields: list[str] = Field(
        default=["External_Key__c"],
        description="WorkOrder fields marked External ID + Unique (upsert keys).",
    )
    seed: int | None = Field(
        default=None, description="Seed of the random generator (ids, error rates) for replays."
    )
