"""Revisions are found by age: retention prunes the finished history of open tickets.

An element sick for months keeps its ticket open and writes a revision each push that
brings new critical samples; retention now prunes the finished ones past the horizon
(wm_service/services/retention.py) and finds them by `created_at` (issue 11).

Revision ID: wm_0017
Revises: wm_0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "wm_0017"
down_revision: str | None = "wm_0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_ticket_revision_created_at"), "ticket_revision", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_revision_created_at"), table_name="ticket_revision")
