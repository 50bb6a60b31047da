"""Outcome reports refused as invalid are set aside instead of blocking the outbox.

A report the WM can never accept (say a platform id longer than the contract allows, or a
WM of another version refusing a field) was retried at the head of the outbox forever, and
every report behind it waited. Now it is marked refused, with why, the rest flow past it,
and it is tried again now and then (be_service/reports.py).

Revision ID: be_0010
Revises: be_0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "be_0010"
down_revision: str | None = "be_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outcome_report", sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("outcome_report", sa.Column("refusal", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("outcome_report", "refusal")
    op.drop_column("outcome_report", "refused_at")
