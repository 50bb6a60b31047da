"""What a BE prunes, and what it never does (the runner is ticketing_common/retention.py).

Ages are the revisions' domain time (`generated_at`: the push that made them). Pruned once
older than the horizon, with their attempts (deleted in the same statement):

* Completed revisions a later revision of their ticket follows;
* a ticket's last revision once it is a Completed clear whose outcome report the WM has
  acknowledged: the ticket is over and the WM, having it completed, never sends it again;
* Moved revisions (another BE sent them).

Never a Received revision, never an Error one (an operator decides), never the latest revision
of a ticket still open (the intake's idempotency and the fencing need it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.retention import PruneStep

_REVISIONS = text(
    """
    WITH doomed AS (
        SELECT r.id FROM ticket_revision r
        WHERE r.generated_at < :horizon
          AND (
              r.status = 'Moved'
              OR (r.status = 'Completed' AND (
                  EXISTS (SELECT 1 FROM ticket_revision l
                          WHERE l.ticket_id = r.ticket_id AND l.revision > r.revision)
                  OR (r.action = 'clear' AND NOT EXISTS (
                          SELECT 1 FROM outcome_report o
                          WHERE o.ticket_id = r.ticket_id AND o.revision = r.revision))
              ))
          )
        ORDER BY r.generated_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), attempts AS (
        DELETE FROM ticket_attempt a USING doomed WHERE a.revision_id = doomed.id RETURNING 1
    ), revisions AS (
        DELETE FROM ticket_revision t USING doomed WHERE t.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM revisions), (SELECT count(*) FROM attempts)
    """
)


async def _revisions(session: AsyncSession, horizon: datetime, limit: int) -> Mapping[str, int]:
    result = await (await session.connection()).execute(
        _REVISIONS, {"horizon": horizon, "limit": limit}
    )
    revisions, attempts = result.one()
    return {"ticket_revision": revisions, "ticket_attempt": attempts}


STEPS = (PruneStep("ticket_revision", _revisions),)
