"""Alembic environment of the WM service's database."""

import wm_service.distribution.models  # noqa: F401  (registers the registry tables)
from ticketing_common.alembic_env import run
from wm_service.models import WMModel

run(WMModel.metadata, version_table="alembic_version")
