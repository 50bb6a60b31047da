"""WM maintenance windows, the decisions they held back, and the window noted on a ticket.

Revision ID: wm_0004
Revises: wm_0003
Create Date: 2026-12-01 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wm_0004"
down_revision: str | None = "wm_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "maintenance_window",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        *(
            sa.Column(name, sa.String(length=200), nullable=True)
            for name in ("market", "hub", "ccap", "service_group", "entity_id")
        ),
        _tz("starts_at"),
        _tz("ends_at"),
        sa.Column("recurrence", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("change_ref", sa.String(length=100), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        _tz("created_at"),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        _tz("updated_at"),
        _tz("ended_at", nullable=True),
        _tz("deleted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_window")),
    )
    op.create_index(op.f("ix_maintenance_window_deleted_at"), "maintenance_window", ["deleted_at"])
    op.create_table(
        "maintenance_suppression",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("window_id", sa.BigInteger(), nullable=False),
        sa.Column("push_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("dedup_key", sa.String(length=240), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("critical_samples", sa.Integer(), nullable=False),
        sa.Column("worst_value", sa.Float(), nullable=True),
        _tz("decided_at"),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["maintenance_window.id"],
            name=op.f("fk_maintenance_suppression_window_id_maintenance_window"),
        ),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["aggregation_push.id"],
            name=op.f("fk_maintenance_suppression_push_id_aggregation_push"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_suppression")),
    )
    op.create_index(
        op.f("ix_maintenance_suppression_window_id"), "maintenance_suppression", ["window_id"]
    )
    op.create_index(
        op.f("ix_maintenance_suppression_push_id"), "maintenance_suppression", ["push_id"]
    )
    op.add_column("ticket", sa.Column("maintenance_window_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("ticket", "maintenance_window_id")
    op.drop_table("maintenance_suppression")
    op.drop_table("maintenance_window")
