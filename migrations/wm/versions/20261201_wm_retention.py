"""Indexes for the retention pass (wm_service/services/retention.py): cleared tickets by the
time they cleared, and each kind's pushes by time (also the late-push check's max).

Revision ID: wm_0008
Revises: wm_0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wm_0008"
down_revision: str | None = "wm_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ticket_cleared_at",
        "ticket",
        ["cleared_at"],
        postgresql_where=sa.text("state = 'cleared'"),
    )
    op.create_index(
        "ix_aggregation_push_kind_generated_at", "aggregation_push", ["kind", "generated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_aggregation_push_kind_generated_at", table_name="aggregation_push")
    op.drop_index("ix_ticket_cleared_at", table_name="ticket")
