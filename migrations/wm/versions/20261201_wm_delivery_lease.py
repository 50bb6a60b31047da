"""WM outbox leases: the sender holding a row while it POSTs it, and until when.

Revision ID: wm_0003
Revises: wm_0002
Create Date: 2026-12-01 13:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wm_0003"
down_revision: str | None = "wm_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ticket_delivery", sa.Column("claimed_by", sa.String(length=200), nullable=True))
    op.add_column(
        "ticket_delivery", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("ticket_delivery", "claimed_until")
    op.drop_column("ticket_delivery", "claimed_by")
