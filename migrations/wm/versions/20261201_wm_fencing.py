"""Fencing of element ownership across failover (issue 9): a generation per backend, drawn
from one sequence so it never goes backwards (not even for a backend deleted and registered
again), the failover episode it was bumped for, and on each delivery where it moved from.

Revision ID: wm_0007
Revises: wm_0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wm_0007"
down_revision: str | None = "wm_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE backend_generation_seq")
    op.add_column(
        "backend",
        sa.Column(
            "generation",
            sa.BigInteger(),
            nullable=False,
            server_default=sa.text("nextval('backend_generation_seq')"),
        ),
    )
    op.add_column("backend", sa.Column("failed_over_at", sa.DateTime(timezone=True)))
    op.add_column("backend", sa.Column("failed_over_seen_at", sa.DateTime(timezone=True)))
    op.add_column("ticket_delivery", sa.Column("moved_from", sa.String(200)))
    op.add_column("ticket_delivery", sa.Column("moved_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("ticket_delivery", "moved_at")
    op.drop_column("ticket_delivery", "moved_from")
    op.drop_column("backend", "failed_over_seen_at")
    op.drop_column("backend", "failed_over_at")
    op.drop_column("backend", "generation")
    op.execute("DROP SEQUENCE backend_generation_seq")
