"""Kinds up to the contract's 64 characters; a revision's platform ids in one JSONB column.

`platform_ids` replaces cherwell_rec_id, cherwell_public_id, sfyc_id and
sfyc_work_order_number: {"cherwell": {"rec_id", "public_id", "existing"}, "sfyc": {"id",
"number"}}, so a platform adds keys, not columns. `existing` marks an incident the revision
found open (it gets a note) rather than opened (it gets a work order). Data moves both ways.

Revision ID: be_0002
Revises: be_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "be_0002"
down_revision: str | None = "be_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_COLUMNS = (
    ("cherwell_rec_id", 64),
    ("cherwell_public_id", 64),
    ("sfyc_id", 32),
    ("sfyc_work_order_number", 32),
)

# An incident on a revision at the note step, or on a finished one without a work order,
# was found open by the check: that revision notes it and never orders work for it.
_TO_JSON = """
UPDATE ticket_revision SET platform_ids = jsonb_strip_nulls(jsonb_build_object(
    'cherwell', CASE WHEN cherwell_rec_id IS NOT NULL THEN jsonb_build_object(
        'rec_id', cherwell_rec_id,
        'public_id', cherwell_public_id,
        'existing', CASE WHEN step = 'note' OR (step = 'done' AND sfyc_id IS NULL)
                         THEN true END) END,
    'sfyc', CASE WHEN sfyc_id IS NOT NULL THEN jsonb_build_object(
        'id', sfyc_id, 'number', sfyc_work_order_number) END))
"""

_FROM_JSON = """
UPDATE ticket_revision SET
    cherwell_rec_id = left(platform_ids->'cherwell'->>'rec_id', 64),
    cherwell_public_id = left(platform_ids->'cherwell'->>'public_id', 64),
    sfyc_id = left(platform_ids->'sfyc'->>'id', 32),
    sfyc_work_order_number = left(platform_ids->'sfyc'->>'number', 32)
"""


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
    op.add_column(
        "ticket_revision",
        sa.Column(
            "platform_ids",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.execute(_TO_JSON)
    for name, _ in _OLD_COLUMNS:
        op.drop_column("ticket_revision", name)


def downgrade() -> None:
    for name, length in _OLD_COLUMNS:
        op.add_column("ticket_revision", sa.Column(name, sa.String(length=length), nullable=True))
    op.execute(_FROM_JSON)
    op.drop_column("ticket_revision", "platform_ids")
    # A kind longer than the old column is cut rather than failing the downgrade.
    op.execute("UPDATE ticket_revision SET kind = left(kind, 32) WHERE length(kind) > 32")
    _kind_length(32, 64)
