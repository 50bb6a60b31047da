"""A revision's ticket JSON is stored as `json` (the text as built) instead of `jsonb`: it is
only ever read whole (sent to a BE as is, shown by the API), so parsing it into jsonb on every
insert of a 20 000-ticket push and printing it back on every send was work for nothing.

Revision ID: wm_0010
Revises: wm_0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "wm_0010"
down_revision: str | None = "wm_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE ticket_revision ALTER COLUMN payload TYPE json USING payload::json")


def downgrade() -> None:
    op.execute("ALTER TABLE ticket_revision ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
