"""A failed attempt records whom it was about: the ticket or the platform.

Only failures about the ticket spend a revision's max_retries; an outage of a platform
(transport, 5xx, 429, limits, a failing login) waits instead. Rows written before have no
cause and count as about the ticket, as they did then.

Revision ID: be_0003
Revises: be_0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "be_0003"
down_revision: str | None = "be_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ticket_attempt", sa.Column("cause", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("ticket_attempt", "cause")
