"""Retention: each revision's domain time (the ticket document's `generated_at`, the time of
the push that made it), indexed, which the pruning measures ages by (be_service/retention.py).

Revision ID: be_0005
Revises: be_0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "be_0005"
down_revision: str | None = "be_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ticket_revision", sa.Column("generated_at", sa.DateTime(timezone=True)))
    # Every stored document has generated_at (the contract requires it); received_at is
    # the stand-in for a row that somehow has none.
    op.execute(
        "UPDATE ticket_revision SET generated_at = "
        "COALESCE(CAST(payload->>'generated_at' AS timestamptz), received_at)"
    )
    op.alter_column("ticket_revision", "generated_at", nullable=False)
    op.create_index(op.f("ix_ticket_revision_generated_at"), "ticket_revision", ["generated_at"])
    # The retention's lookups: the later revisions of a ticket, an outcome report not yet
    # acknowledged for a revision.
    op.create_index(
        op.f("ix_outcome_report_ticket_id"), "outcome_report", ["ticket_id", "revision"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outcome_report_ticket_id"), table_name="outcome_report")
    op.drop_index(op.f("ix_ticket_revision_generated_at"), table_name="ticket_revision")
    op.drop_column("ticket_revision", "generated_at")
