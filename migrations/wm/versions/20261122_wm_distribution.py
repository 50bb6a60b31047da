"""WM distribution: backend registry, and partial indexes on the outbox for claim and ordering.

Revision ID: wm_0002
Revises: wm_0001
Create Date: 2026-11-22 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wm_0002"
down_revision: str | None = "wm_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backend",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("intake_token", sa.String(length=512), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_probe_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_probe_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_backend")),
    )
    op.create_index(
        "ix_ticket_delivery_pending_backend",
        "ticket_delivery",
        ["backend_name", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_ticket_delivery_pending_key",
        "ticket_delivery",
        ["dedup_key", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_ticket_delivery_pending_key", table_name="ticket_delivery")
    op.drop_index("ix_ticket_delivery_pending_backend", table_name="ticket_delivery")
    op.drop_table("backend")
