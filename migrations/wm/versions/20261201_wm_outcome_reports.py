"""End-to-end state on the WM: each delivery's stage from the BEs' outcome reports, the
platform ids and last error they carry, and the BE health sent with each heartbeat.

A backend registered by hand has no heartbeat until it sends one (last_seen_at NULL).
Indexes serve the ticket list's filters (stage, incident, work order, market, hub, updated).

Revision ID: wm_0005
Revises: wm_0004
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "wm_0005"
down_revision: str | None = "wm_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELIVERY_TEXTS = {
    "incident_public_id": sa.String(64),
    "incident_rec_id": sa.String(64),
    "work_order_id": sa.String(64),
    "work_order_number": sa.String(64),
    "outcome_operation": sa.String(32),
    "outcome_error": sa.Text(),
}


def upgrade() -> None:
    op.add_column(
        "ticket_delivery",
        sa.Column("stage", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
    )
    op.add_column(
        "ticket_delivery",
        sa.Column("report_seq", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("ticket_delivery", sa.Column("generation", sa.BigInteger(), nullable=True))
    for name, type_ in _DELIVERY_TEXTS.items():
        op.add_column("ticket_delivery", sa.Column(name, type_, nullable=True))
    op.add_column(
        "ticket_delivery", sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Revisions delivered before reports existed are at their BE, as far as the WM knows.
    op.execute("UPDATE ticket_delivery SET stage = 'at_backend' WHERE status = 'delivered'")
    for column in ("stage", "incident_public_id", "work_order_number"):
        op.create_index(op.f(f"ix_ticket_delivery_{column}"), "ticket_delivery", [column])
    op.create_index(
        "ix_ticket_delivery_ticket_revision", "ticket_delivery", ["ticket_id", "revision"]
    )
    op.create_index(op.f("ix_ticket_updated_at"), "ticket", ["updated_at"])
    for part in ("market", "hub"):
        op.create_index(
            f"ix_ticket_{part}", "ticket", [sa.text(f"(payload -> 'location' ->> '{part}')")]
        )
    op.alter_column(
        "backend", "last_seen_at", existing_type=sa.DateTime(timezone=True), nullable=True
    )
    op.add_column(
        "backend", sa.Column("health", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("backend", sa.Column("health_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("backend", "health_at")
    op.drop_column("backend", "health")
    op.execute("UPDATE backend SET last_seen_at = registered_at WHERE last_seen_at IS NULL")
    op.alter_column(
        "backend", "last_seen_at", existing_type=sa.DateTime(timezone=True), nullable=False
    )
    for part in ("hub", "market"):
        op.drop_index(f"ix_ticket_{part}", table_name="ticket")
    op.drop_index(op.f("ix_ticket_updated_at"), table_name="ticket")
    op.drop_index("ix_ticket_delivery_ticket_revision", table_name="ticket_delivery")
    for column in ("work_order_number", "incident_public_id", "stage"):
        op.drop_index(op.f(f"ix_ticket_delivery_{column}"), table_name="ticket_delivery")
    for name in ("outcome_at", *reversed(_DELIVERY_TEXTS), "generation", "report_seq", "stage"):
        op.drop_column("ticket_delivery", name)
