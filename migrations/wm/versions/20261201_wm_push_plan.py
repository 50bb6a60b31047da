"""A big push's decided revisions, written in chunks after the push has answered.

Revision ID: wm_0014
Revises: wm_0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wm_0014"
down_revision: str | None = "wm_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_plan",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("push_id", sa.BigInteger(), nullable=False),
        sa.Column("push_kind", sa.String(32), nullable=False),
        sa.Column("revisions", sa.Integer(), nullable=False),
        sa.Column("plan", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_push_plan_push_id"), "push_plan", ["push_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_push_plan_push_id"), table_name="push_plan")
    op.drop_table("push_plan")
