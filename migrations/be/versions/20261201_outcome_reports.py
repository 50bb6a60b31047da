"""Outcome reports for the WM: an outbox table, and per revision its report seq and generation.

Each Completed, Error or re-driven revision leaves a report written in the same transaction
as its state change; the reporter loop sends them to the WM and deletes them on its ack.

Revision ID: be_0004
Revises: be_0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "be_0004"
down_revision: str | None = "be_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "ticket_revision",
        sa.Column("report_seq", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("ticket_revision", sa.Column("generation", sa.BigInteger(), nullable=True))
    op.create_table(
        "outcome_report",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome_report")),
    )


def downgrade() -> None:
    op.drop_table("outcome_report")
    op.drop_column("ticket_revision", "generation")
    op.drop_column("ticket_revision", "report_seq")
