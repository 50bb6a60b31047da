"""Kinds up to the contract's 64 characters (the BE accepts any bounded kind).

Revision ID: be_0002
Revises: be_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "be_0002"
down_revision: str | None = "be_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _kind_length(new: int, old: int) -> None:
    op.alter_column(
        "ticket_revision",
        "kind",
        type_=sa.String(length=new),
        existing_type=sa.String(length=old),
        existing_nullable=False,
    )


def upgrade() -> None:
    _kind_length(64, 32)


def downgrade() -> None:
    # A kind longer than the old column is cut rather than failing the downgrade.
    op.execute("UPDATE ticket_revision SET kind = left(kind, 32) WHERE length(kind) > 32")
    _kind_length(32, 64)
