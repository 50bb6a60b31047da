"""The claim's scan: Received revisions in id order from an index of Received revisions only,
instead of the primary key, where the finished ones pile up ahead of them (issue 11: 30 ms
per claim at 20 000 revisions).

Revision ID: be_0006
Revises: be_0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "be_0006"
down_revision: str | None = "be_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ticket_revision_received_id",
        "ticket_revision",
        ["id"],
        postgresql_where=sa.text("status = 'Received'"),
    )
    op.execute("ALTER TABLE ticket_revision SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE ticket_revision RESET (fillfactor)")
    op.drop_index("ix_ticket_revision_received_id", table_name="ticket_revision")
