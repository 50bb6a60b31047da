"""Alembic environment of the BE service's database."""

from be_service.models import BEModel
from migrations.env_common import run

run(BEModel.metadata, version_table="alembic_version")
