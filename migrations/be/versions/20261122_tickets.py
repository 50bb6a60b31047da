"""BE tables: ticket revisions (the delivery state machine), attempts, run-time settings.

Revision ID: be_0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "be_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "be_setting",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("processing_enabled", sa.Boolean(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("max_tickets_per_request", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_be_setting_single_row")),
        sa.CheckConstraint(
            "max_retries BETWEEN 0 AND 100", name=op.f("ck_be_setting_max_retries_range")
        ),
        sa.CheckConstraint(
            "max_tickets_per_request BETWEEN 1 AND 200",
            name=op.f("ck_be_setting_max_tickets_per_request_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_be_setting")),
    )
    op.create_table(
        "ticket_revision",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=4), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("retry_round", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cherwell_rec_id", sa.String(length=64), nullable=True),
        sa.Column("cherwell_public_id", sa.String(length=64), nullable=True),
        sa.Column("sfyc_id", sa.String(length=32), nullable=True),
        sa.Column("sfyc_work_order_number", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_revision")),
        sa.UniqueConstraint("ticket_id", "revision", name=op.f("uq_ticket_revision_ticket_id")),
    )
    op.create_index(
        op.f("ix_ticket_revision_category"), "ticket_revision", ["category"], unique=False
    )
    op.create_index(
        op.f("ix_ticket_revision_dedup_key"), "ticket_revision", ["dedup_key"], unique=False
    )
    op.create_index(
        "ix_ticket_revision_pending",
        "ticket_revision",
        ["dedup_key", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'Received'"),
    )
    op.create_index(op.f("ix_ticket_revision_status"), "ticket_revision", ["status"], unique=False)
    op.create_index(
        op.f("ix_ticket_revision_ticket_id"), "ticket_revision", ["ticket_id"], unique=False
    )
    op.create_table(
        "ticket_attempt",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("revision_id", sa.BigInteger(), nullable=False),
        sa.Column("retry_round", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["ticket_revision.id"],
            name=op.f("fk_ticket_attempt_revision_id_ticket_revision"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_attempt")),
    )
    op.create_index(
        op.f("ix_ticket_attempt_revision_id"), "ticket_attempt", ["revision_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_attempt_revision_id"), table_name="ticket_attempt")
    op.drop_table("ticket_attempt")
    op.drop_index(op.f("ix_ticket_revision_ticket_id"), table_name="ticket_revision")
    op.drop_index(op.f("ix_ticket_revision_status"), table_name="ticket_revision")
    op.drop_index(
        "ix_ticket_revision_pending",
        table_name="ticket_revision",
        postgresql_where=sa.text("status = 'Received'"),
    )
    op.drop_index(op.f("ix_ticket_revision_dedup_key"), table_name="ticket_revision")
    op.drop_index(op.f("ix_ticket_revision_category"), table_name="ticket_revision")
    op.drop_table("ticket_revision")
    op.drop_table("be_setting")
