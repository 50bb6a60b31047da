"""A leaner outbox (issue 11): the delivery row no longer copies its revision's ticket JSON
(the sender reads it from ticket_revision), two indexes no query uses are dropped, and pages
keep room for the lease updates to stay HOT (no index entries written for them).

Revision ID: wm_0009
Revises: wm_0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "wm_0009"
down_revision: str | None = "wm_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("ticket_delivery", "payload")
    # (ticket_id, revision) serves every lookup by ticket; the pending partial indexes every
    # lookup by status.
    op.drop_index(op.f("ix_ticket_delivery_ticket_id"), table_name="ticket_delivery")
    op.drop_index(op.f("ix_ticket_delivery_status"), table_name="ticket_delivery")
    op.execute("ALTER TABLE ticket_delivery SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE ticket_delivery RESET (fillfactor)")
    op.create_index(op.f("ix_ticket_delivery_status"), "ticket_delivery", ["status"])
    op.create_index(op.f("ix_ticket_delivery_ticket_id"), "ticket_delivery", ["ticket_id"])
    op.add_column("ticket_delivery", sa.Column("payload", postgresql.JSONB(), nullable=True))
    op.execute(
        "UPDATE ticket_delivery d SET payload = r.payload FROM ticket_revision r "
        "WHERE r.id = d.revision_id"
    )
    op.alter_column("ticket_delivery", "payload", nullable=False)
