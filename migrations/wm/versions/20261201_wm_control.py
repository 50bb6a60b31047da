"""The BEs' control tokens, and a record of every operator action the WM carries out on them.

Revision ID: wm_0006
Revises: wm_0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "wm_0006"
down_revision: str | None = "wm_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("backend", sa.Column("control_token", sa.String(512), nullable=True))
    op.create_table(
        "control_action",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("request", postgresql.JSONB(), nullable=False),
        sa.Column("result", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_action")),
    )
    op.create_index(op.f("ix_control_action_at"), "control_action", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_control_action_at"), table_name="control_action")
    op.drop_table("control_action")
    op.drop_column("backend", "control_token")
