"""Leaner revision writes: attempts stop checking their revision row by row, a redundant
index goes.

Each attempt's foreign-key check looked its revision up and share-locked it (four attempts
per revision, one statement per batch): 30 % of the BE's database time.
Attempts are written only for revisions the worker holds and retention deletes them with
their revision (be_service/retention.py). The index on ticket_id alone duplicated the
unique (ticket_id, revision).

Revision ID: be_0007
Revises: be_0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "be_0007"
down_revision: str | None = "be_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_ticket_revision_ticket_id"), table_name="ticket_revision")
    op.drop_constraint(
        op.f("fk_ticket_attempt_revision_id_ticket_revision"), "ticket_attempt", type_="foreignkey"
    )


def downgrade() -> None:
    op.create_foreign_key(
        op.f("fk_ticket_attempt_revision_id_ticket_revision"),
        "ticket_attempt",
        "ticket_revision",
        ["revision_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(op.f("ix_ticket_revision_ticket_id"), "ticket_revision", ["ticket_id"])
