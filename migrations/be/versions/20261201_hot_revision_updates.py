"""Revision updates that stay on their page.

A revision row is ~2 KB (its document), three to a page: with a fifth of the page free
(fillfactor 80) there was no room for a new version of any of them, so every claim and step
update was a non-HOT update that wrote the whole row elsewhere and a new entry in each of
the table's eight indexes. With half the page free, the updates that change no indexed
column (the claim's lease, a step's platform ids) stay on the page; the last one, which
changes the status, cannot. With the revision's report written by that same update (no
separate update of report_seq), the BE's statement time per 20 000-ticket run fell from
about 4.5 s to 2.3 s per BE (docs/performance.md, items 14 and 15). The table takes
about 50 % more space.

Revision ID: be_0008
Revises: be_0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "be_0008"
down_revision: str | None = "be_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Pages written from now on; existing pages keep theirs until rewritten.
    op.execute("ALTER TABLE ticket_revision SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE ticket_revision SET (fillfactor = 80)")
