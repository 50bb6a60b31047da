"""A revision's attempts keyed by (revision_id, id): one index where there were two.

Every attempt is looked up by its revision (the history, the failure counts, the check for an
earlier create, retention) and ordered by id within it; nothing looks one up by id alone. The
primary key on id and the index on revision_id cost two index entries per attempt, four
attempts per revision (issue 11: 80 000 of the e2e run's 1.3 million index entries).

Revision ID: be_0009
Revises: be_0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "be_0009"
down_revision: str | None = "be_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_ticket_attempt_revision_id"), table_name="ticket_attempt")
    op.drop_constraint(op.f("pk_ticket_attempt"), "ticket_attempt", type_="primary")
    op.create_primary_key(op.f("pk_ticket_attempt"), "ticket_attempt", ["revision_id", "id"])


def downgrade() -> None:
    op.drop_constraint(op.f("pk_ticket_attempt"), "ticket_attempt", type_="primary")
    op.create_primary_key(op.f("pk_ticket_attempt"), "ticket_attempt", ["id"])
    op.create_index(op.f("ix_ticket_attempt_revision_id"), "ticket_attempt", ["revision_id"])
