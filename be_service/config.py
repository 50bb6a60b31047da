"""Settings of one BE instance, read once from BE_* environment variables.

The three run-time settings operators change over REST (processing on/off, max retries, max
tickets per request) live in the database instead (services/settings.py); these only seed it.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticketing_common.auth import locked_token
from ticketing_common.logging import LogFormat

# Development credentials: the emulators accept any non-empty value (docs/contracts.md §4).
_DEV = "dev-only-change-me"


class CherwellFields(BaseSettings):
    """Business-object and field ids the BE writes on Cherwell (docs/contracts.md §2)."""

    model_config = SettingsConfigDict(env_prefix="BE_CHERWELL_", extra="ignore")

    incident_busobid: str = "6dd53665c0c24cab86870a21cf6434ae"
    field_incident_id: str = "6ae282c55e8e4266ae66ffc070c17fa3"
    field_status: str = "5eb3234ae1344c64a19819eda437f18d"
    field_description: str = "252b836fc72c4149915053ca1131d138"
    field_short_description: str = "93e8ea93ff67fd95118255419690a50ef2d56f910c"
    field_priority: str = "83c36313e97b4e6b9028aff3b401b71c"
    field_category: str = "9e0b434034e94781ab29598150f388aa"
    field_subcategory: str = "1163fda7e6a44f40bb94d2b47cc58f46"
    field_correlation_key: str = "94e3e947b25d42a9f75569bf4c2632538508f43c9c"
    field_work_order_number: str = "9408bdf5e9b99ad9a6f6945e4571f7118b9d92bb7a"
    journal_busobid: str = "3312d0cebbbe3502f2df0fcf8f0006c7"
    field_journal_parent_rec_id: str = "9c2a9bd78a74741d50decf4c0f21a956"
    field_journal_parent_type_id: str = "0189a835421c76e78c8784af8d94e4c0"
    field_journal_details: str = "3ec365dd533ddb7ef3d1c111186ce872"
    open_statuses: list[str] = ["New", "Assigned", "In Progress"]
    new_status: str = "New"
    categories: list[str] = ["Falla de Linea", "SNR"]


class BESettings(BaseSettings):
    """Everything a BE needs from its environment; secrets are SecretStr and never echoed."""

    model_config = SettingsConfigDict(env_prefix="BE_", extra="ignore")

    name: str = Field("be-1", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    public_url: str = "http://127.0.0.1:8101"
    log_level: str = "INFO"
    log_format: LogFormat = "text"  # or json: one object per line, for a log shipper
    # Bearer token of Prometheus for /metrics (the admin token works too); unset locks it.
    metrics_token: SecretStr = Field(default_factory=locked_token)

    database_url: SecretStr | None = None
    data_dir: Path = Path(".data")
    database_name: str = ""
    # How long a start waits for a database that is not reachable yet (ticketing_common/db.py).
    database_wait_seconds: float = Field(60.0, ge=0)
    # Connections kept once opened; None: effective_db_pool_size. Fewer than the batches
    # in flight, and connections opened for a burst were closed and opened again all the
    # time, each paying what a new connection costs Postgres (18 ms of CPU then, 5.5 ms
    # since the type lookup is shared: bench.connections, item 42): with 16 workers on a
    # pool of 10, 28 of them per 5 000 tickets (docs/performance.md, item 35).
    db_pool_size: int | None = Field(None, ge=1, le=100)

    # Unset tokens are locked, not open: a random value nobody knows (see unset_tokens()).
    # The intake token still reaches the WM through the self-registration.
    intake_token: SecretStr = Field(default_factory=locked_token)
    admin_token: SecretStr = Field(default_factory=locked_token)
    # What the WM may do here on an operator's behalf: pause, resume, re-drive Errors, and
    # nothing else; it reaches the WM through the self-registration, like the intake token.
    control_token: SecretStr = Field(default_factory=locked_token)

    # One ticket-operations host for both platforms; the per-platform URLs win when set.
    platform_url: str | None = None
    cherwell_url: str = ""
    cherwell_client_id: str = "dev-client-id"
    cherwell_username: str = "dev-user"
    cherwell_password: SecretStr = SecretStr(_DEV)
    sfyc_url: str = ""
    sfyc_client_id: str = "dev-client-id"
    sfyc_client_secret: SecretStr = SecretStr(_DEV)
    sfyc_api_version: str = Field("v60.0", pattern=r"^v\d+\.\d+$")
    sfyc_external_id_field: str = "External_Key__c"
    cherwell: CherwellFields = Field(default_factory=CherwellFields)

    connect_timeout_seconds: float = Field(5.0, gt=0)
    request_timeout_seconds: float = Field(30.0, gt=0)
    bypass_proxy: bool = False

    # Batches in flight at once. Each worker holds one, so with a slow platform their
    # number bounds the rate (at 500 ms a call one BE completes ~190 tickets/s with 8,
    # ~265/s with 16); with fast platforms more only cost Postgres time. So the BE starts
    # with `workers` and, while a backlog lasts, tries more up to `workers_max`, keeping
    # them only if the completed rate rises (pipeline/slots.py; docs/performance.md, item 36).
    # workers_max = workers fixes the number.
    workers: int = Field(16, ge=1, le=256)
    workers_max: int = Field(64, ge=1, le=256)
    # How often the number of batches in flight is looked at (pipeline/slots.py).
    worker_adjust_seconds: float = Field(2.0, gt=0)
    poll_interval_seconds: float = Field(0.5, gt=0)
    # Renewed every third of itself while a batch is sent; after a crash, the dead worker's
    # revisions become claimable once it lapses.
    claim_lease_seconds: float = Field(30.0, gt=0)
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_cap_seconds: float = Field(60.0, ge=0)
    retry_after_cap_seconds: float = Field(300.0, ge=0)
    # Least wait after a create that failed as a whole (timeout, 5xx, lost answer) before
    # the incident is searched for again: Cherwell may still be committing that create,
    # and a search that misses it leads to a second incident.
    ambiguous_create_delay_seconds: float = Field(30.0, ge=0)
    # A platform that fails as a whole this many times in a row (transport, 5xx, 429,
    # limits, login) opens its circuit: its steps wait, and one trial batch of one revision
    # is sent per probe interval (or Retry-After, when longer) until one succeeds.
    circuit_failure_threshold: int = Field(5, ge=1, le=1000)
    circuit_probe_interval_seconds: float = Field(15.0, gt=0)

    # Seeds of the run-time settings, used only when the database has none yet.
    processing_enabled: bool = True
    max_retries: int = Field(3, ge=0, le=100)
    max_tickets_per_request: int = Field(100, ge=1, le=200)

    wm_url: str | None = None
    wm_token: SecretStr | None = None
    heartbeat_seconds: float = Field(10.0, gt=0)
    # Outcome reports (be_service/reports.py): how many per POST, how soon after being
    # written an idle reporter looks for new ones, and how often one refused as invalid (set
    # aside so that the others flow) is tried again, say once the WM or this BE is fixed.
    report_batch_size: int = Field(200, ge=1, le=1000)
    report_poll_seconds: float = Field(0.5, gt=0)
    report_refused_retry_seconds: float = Field(600.0, ge=1)
    # Retention (be_service/retention.py): finished revisions older than this, by the time of
    # the push that made them, are pruned every interval, so many per transaction.
    retention_days: float = Field(30.0, gt=0)
    retention_interval_seconds: float = Field(300.0, gt=0)
    retention_batch_size: int = Field(1000, ge=1, le=100_000)

    def unset_tokens(self) -> list[str]:
        """The token variables left unset (their endpoints reject every request)."""
        return [
            f"BE_{name.upper()}"
            for name in ("intake_token", "admin_token", "metrics_token", "control_token")
            if name not in self.model_fields_set
        ]

    @property
    def effective_db_pool_size(self) -> int:
        # One connection per batch that may be in flight, and four more (the reporter,
        # lease renewals, the API): opened only when that many are wanted at once, then
        # kept, since each new connection costs Postgres a server process and its catalogs
        # read (items 35 and 42).
        return self.db_pool_size if self.db_pool_size is not None else self.workers_max + 4

    @property
    def db_pool_overflow(self) -> int:
        """Connections opened beyond the pool for a burst (closed after use): enough for
        every batch that may be in flight and four more, whatever the pool keeps."""
        return max(4, self.workers_max + 4 - self.effective_db_pool_size)

    @model_validator(mode="after")
    def _derive(self) -> BESettings:
        if self.workers_max < self.workers and "workers_max" not in self.model_fields_set:
            self.workers_max = self.workers  # BE_WORKERS alone above the default ceiling
        if self.workers_max < self.workers:
            raise ValueError(
                f"BE_WORKERS_MAX ({self.workers_max}) must be at least BE_WORKERS "
                f"({self.workers}): the batches in flight start at BE_WORKERS"
            )
        if not self.database_name:
            self.database_name = "be_" + re.sub(r"[^A-Za-z0-9]", "_", self.name).lower()
        base = (self.platform_url or "http://127.0.0.1:8200").rstrip("/")
        self.cherwell_url = (self.cherwell_url or f"{base}/CherwellAPI").rstrip("/")
        self.sfyc_url = (self.sfyc_url or f"{base}/services").rstrip("/")
        return self
