"""A ticket stops carrying a copy of its latest revision's JSON.

The ticket's `payload` was the same document as its latest revision's (ticket_revision), kept
as jsonb: a 20 000-ticket push parsed and wrote 32 MB twice. It was read for the market and
hub of the ticket list (expression indexes), which become columns, and for a group ticket's
channels and a ticket's detail, which read the latest revision.

Revision ID: wm_0013
Revises: wm_0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wm_0013"
down_revision: str | None = "wm_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLACES = ("market", "hub")


def upgrade() -> None:
    for column in _PLACES:
        op.add_column("ticket", sa.Column(column, sa.String(200), nullable=True))
    op.execute(
        "UPDATE ticket SET market = payload -> 'location' ->> 'market', "
        "hub = payload -> 'location' ->> 'hub'"
    )
    for column in _PLACES:
        op.drop_index(f"ix_ticket_{column}", table_name="ticket")
        op.create_index(op.f(f"ix_ticket_{column}"), "ticket", [column])
    op.drop_column("ticket", "payload")


def downgrade() -> None:
    op.add_column(
        "ticket",
        sa.Column("payload", sa.dialects.postgresql.JSONB(), nullable=False, server_default="{}"),
    )
    op.execute(
        "UPDATE ticket t SET payload = r.payload::jsonb FROM ticket_revision r "
        "WHERE r.ticket_id = t.id AND r.revision = t.revision"
    )
    op.alter_column("ticket", "payload", server_default=None)
    for column in _PLACES:
        op.drop_index(op.f(f"ix_ticket_{column}"), table_name="ticket")
        op.create_index(
            f"ix_ticket_{column}",
            "ticket",
            [sa.text(f"((payload -> 'location'::text) ->> '{column}'::text)")],
        )
        op.drop_column("ticket", column)
