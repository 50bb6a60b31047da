"""Alembic environment of the BE service's database."""

from be_service.models import BEModel
from ticketing_common.alembic_env import run

run(BEModel.metadata, version_table="alembic_version")
