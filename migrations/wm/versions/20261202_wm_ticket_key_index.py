"""The ticket's index on dedup_key goes: no query looks a ticket up by it.

A push finds the open tickets of its kind by kind and state, the list filters by kind and
entity_id, a ticket's deliveries are found by ticket_id; the unique open_key keeps one open
ticket per key. The index only cost an entry on every ticket written (issue 11: 20 000 of
the e2e run's 1.3 million index entries).

Revision ID: wm_0015
Revises: wm_0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "wm_0015"
down_revision: str | None = "wm_0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_ticket_dedup_key"), table_name="ticket")


def downgrade() -> None:
    op.create_index(op.f("ix_ticket_dedup_key"), "ticket", ["dedup_key"], unique=False)
