"""One index identifies an outbox row's revision instead of two: (ticket_id, revision),
now unique, takes over the unique constraint on revision_id.

Both said the same (a revision is one (ticket_id, revision) pair, and has one delivery), and
every lookup is by (ticket_id, revision): a report's revision, a ticket's latest delivery,
a ticket's revisions with their deliveries. The outbox row is written three times per
revision (inserted, then the delivered mark and the report, neither HOT): each paid an
entry in both (issue 11).

Revision ID: wm_0016
Revises: wm_0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "wm_0016"
down_revision: str | None = "wm_0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_unique_constraint(
        op.f("uq_ticket_delivery_ticket_id"), "ticket_delivery", ["ticket_id", "revision"]
    )
    op.drop_index("ix_ticket_delivery_ticket_revision", table_name="ticket_delivery")
    op.drop_constraint(op.f("uq_ticket_delivery_revision_id"), "ticket_delivery", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint(
        op.f("uq_ticket_delivery_revision_id"), "ticket_delivery", ["revision_id"]
    )
    op.create_index(
        "ix_ticket_delivery_ticket_revision", "ticket_delivery", ["ticket_id", "revision"]
    )
    op.drop_constraint(op.f("uq_ticket_delivery_ticket_id"), "ticket_delivery", type_="unique")
