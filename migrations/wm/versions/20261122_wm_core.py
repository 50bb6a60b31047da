"""WM core schema: pushes, critical samples, tickets and revisions, outbox, topology, settings.

Revision ID: wm_0001
Revises:
Create Date: 2026-11-22 16:28:52.851055
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "wm_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aggregation_push",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("aggregation_id", sa.String(length=200), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("critical_entries", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("cleared", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregation_push")),
        sa.UniqueConstraint("kind", "aggregation_id", name=op.f("uq_aggregation_push_kind")),
    )
    op.create_index(op.f("ix_aggregation_push_kind"), "aggregation_push", ["kind"], unique=False)
    op.create_table(
        "ticket",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("dedup_key", sa.String(length=240), nullable=False),
        sa.Column("open_key", sa.String(length=240), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("subscribers", sa.Integer(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket")),
        sa.UniqueConstraint("open_key", name=op.f("uq_ticket_open_key")),
    )
    op.create_index(op.f("ix_ticket_category"), "ticket", ["category"], unique=False)
    op.create_index(op.f("ix_ticket_dedup_key"), "ticket", ["dedup_key"], unique=False)
    op.create_index(op.f("ix_ticket_entity_id"), "ticket", ["entity_id"], unique=False)
    op.create_index(op.f("ix_ticket_kind"), "ticket", ["kind"], unique=False)
    op.create_index(op.f("ix_ticket_opened_at"), "ticket", ["opened_at"], unique=False)
    op.create_index(op.f("ix_ticket_state"), "ticket", ["state"], unique=False)
    op.create_table(
        "topology_element",
        sa.Column("element_id", sa.String(length=200), nullable=False),
        sa.Column("market", sa.String(length=200), nullable=True),
        sa.Column("hub", sa.String(length=200), nullable=True),
        sa.Column("ccap", sa.String(length=200), nullable=True),
        sa.Column("service_group", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=200), nullable=True),
        sa.Column("subscribers", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("element_id", name=op.f("pk_topology_element")),
    )
    op.create_table(
        "wm_setting",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_wm_setting")),
    )
    op.create_table(
        "critical_sample",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("push_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["aggregation_push.id"],
            name=op.f("fk_critical_sample_push_id_aggregation_push"),
        ),
        sa.PrimaryKeyConstraint("kind", "entity_id", "at", name=op.f("pk_critical_sample")),
    )
    op.create_index(
        op.f("ix_critical_sample_push_id"), "critical_sample", ["push_id"], unique=False
    )
    op.create_table(
        "ticket_revision",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("push_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["aggregation_push.id"],
            name=op.f("fk_ticket_revision_push_id_aggregation_push"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_revision_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_revision")),
        sa.UniqueConstraint("ticket_id", "revision", name=op.f("uq_ticket_revision_ticket_id")),
    )
    op.create_index(
        op.f("ix_ticket_revision_push_id"), "ticket_revision", ["push_id"], unique=False
    )
    op.create_index(
        op.f("ix_ticket_revision_ticket_id"), "ticket_revision", ["ticket_id"], unique=False
    )
    op.create_table(
        "ticket_delivery",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("revision_id", sa.BigInteger(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("dedup_key", sa.String(length=240), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("backend_name", sa.String(length=200), nullable=True),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["ticket_revision.id"],
            name=op.f("fk_ticket_delivery_revision_id_ticket_revision"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_delivery")),
        sa.UniqueConstraint("revision_id", name=op.f("uq_ticket_delivery_revision_id")),
    )
    op.create_index(
        op.f("ix_ticket_delivery_backend_name"), "ticket_delivery", ["backend_name"], unique=False
    )
    op.create_index(
        op.f("ix_ticket_delivery_dedup_key"), "ticket_delivery", ["dedup_key"], unique=False
    )
    op.create_index(op.f("ix_ticket_delivery_status"), "ticket_delivery", ["status"], unique=False)
    op.create_index(
        op.f("ix_ticket_delivery_ticket_id"), "ticket_delivery", ["ticket_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_delivery_ticket_id"), table_name="ticket_delivery")
    op.drop_index(op.f("ix_ticket_delivery_status"), table_name="ticket_delivery")
    op.drop_index(op.f("ix_ticket_delivery_dedup_key"), table_name="ticket_delivery")
    op.drop_index(op.f("ix_ticket_delivery_backend_name"), table_name="ticket_delivery")
    op.drop_table("ticket_delivery")
    op.drop_index(op.f("ix_ticket_revision_ticket_id"), table_name="ticket_revision")
    op.drop_index(op.f("ix_ticket_revision_push_id"), table_name="ticket_revision")
    op.drop_table("ticket_revision")
    op.drop_index(op.f("ix_critical_sample_push_id"), table_name="critical_sample")
    op.drop_table("critical_sample")
    op.drop_table("wm_setting")
    op.drop_table("topology_element")
    op.drop_index(op.f("ix_ticket_state"), table_name="ticket")
    op.drop_index(op.f("ix_ticket_opened_at"), table_name="ticket")
    op.drop_index(op.f("ix_ticket_kind"), table_name="ticket")
    op.drop_index(op.f("ix_ticket_entity_id"), table_name="ticket")
    op.drop_index(op.f("ix_ticket_dedup_key"), table_name="ticket")
    op.drop_index(op.f("ix_ticket_category"), table_name="ticket")
    op.drop_table("ticket")
    op.drop_index(op.f("ix_aggregation_push_kind"), table_name="aggregation_push")
    op.drop_table("aggregation_push")
