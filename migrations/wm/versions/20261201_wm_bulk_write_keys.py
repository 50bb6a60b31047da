"""The push's bulk writes stop checking foreign keys row by row.

A 20 000-ticket push wrote 100 000 child rows (samples, revisions, outbox rows), and each one
ran a foreign-key check: a lookup of its parent and a share lock on it, 60 000 of them on
the one push row. The parents are written by the same transaction and statements
(services/ingestion.py), and retention deletes children before parents
(services/retention.py), so the checks only cost.

Revision ID: wm_0011
Revises: wm_0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "wm_0011"
down_revision: str | None = "wm_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, parent table); each constraint is named fk_<table>_<column>_<parent>.
_KEYS = (
    ("critical_sample", "push_id", "aggregation_push"),
    ("ticket_revision", "push_id", "aggregation_push"),
    ("ticket_revision", "ticket_id", "ticket"),
    ("ticket_delivery", "revision_id", "ticket_revision"),
)


def upgrade() -> None:
    for table, column, parent in _KEYS:
        op.drop_constraint(op.f(f"fk_{table}_{column}_{parent}"), table, type_="foreignkey")
    # Duplicated the unique (ticket_id, revision).
    op.drop_index(op.f("ix_ticket_revision_ticket_id"), table_name="ticket_revision")


def downgrade() -> None:
    op.create_index(op.f("ix_ticket_revision_ticket_id"), "ticket_revision", ["ticket_id"])
    for table, column, parent in _KEYS:
        op.create_foreign_key(
            op.f(f"fk_{table}_{column}_{parent}"), table, parent, [column], ["id"]
        )
