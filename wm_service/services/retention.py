"""What the WM prunes, and what it never does (the runner is ticketing_common/retention.py).

Pruned once older than the horizon: critical samples (a push already drops those past the
rule window: this catches kinds no longer pushed), cleared tickets with every revision and
delivery (only when each delivery is completed on the platforms), the completed revisions
(and deliveries) a later revision of their ticket follows, open or not (an element sick for
months writes one a push), pushes with their results and suppressions (never the latest push
of a kind: the late-push rule needs it; never one a critical sample or a chunk still to be
written points at), and operators' control actions.

Never: an open ticket, its latest revision, a revision not yet completed, one in error, nor
a delivery a ticket takes its platform numbers from (PLATFORM_NUMBERS: the one that ordered
its work order, the newest that holds its incident's ids), so a ticket shows the same
incident and work order before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.retention import PruneStep

_SAMPLES = text(
    """
    WITH doomed AS (
        SELECT ctid FROM critical_sample WHERE at < :horizon LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    DELETE FROM critical_sample s USING doomed WHERE s.ctid = doomed.ctid
    """
)

# A cleared ticket goes whole: its revisions and deliveries with it. Its age is its clear's.
_CLEARED_TICKETS = text(
    """
    WITH doomed AS (
        SELECT t.id FROM ticket t
        WHERE t.state = 'cleared' AND t.cleared_at < :horizon
          AND NOT EXISTS (SELECT 1 FROM ticket_delivery d
                          WHERE d.ticket_id = t.id AND d.stage <> 'completed')
        ORDER BY t.cleared_at
        LIMIT :limit
        FOR UPDATE OF t SKIP LOCKED
    ), deliveries AS (
        DELETE FROM ticket_delivery d USING doomed WHERE d.ticket_id = doomed.id RETURNING 1
    ), revisions AS (
        DELETE FROM ticket_revision r USING doomed WHERE r.ticket_id = doomed.id RETURNING 1
    ), tickets AS (
        DELETE FROM ticket t USING doomed WHERE t.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM revisions),
           (SELECT count(*) FROM deliveries)
    """
)

# Finished history a later revision follows: delivered and completed (a fast BE's report
# can mark a row completed while its sender still holds it, pending). Two things are read
# from older deliveries, and the delivery each reads stays:
# * a ticket shows the newest known value of each of PLATFORM_NUMBERS (services/tickets.py),
#   all four named here: incident ids come back with every revision that finds its incident
#   (a note, a clear), so a later holder makes an earlier one's redundant; a work order is
#   ordered once, by the revision that opened its incident, and that delivery stays with the
#   ticket (one row per work order: proving that no later delivery holds a number would
#   read every later one, each pass);
# * a key's next revision goes to the backend of its newest delivery that has one
#   (distribution/assignment.py): that delivery stays.
_SUPERSEDED_REVISIONS = text(
    """
    WITH doomed AS (
        SELECT r.id, r.ticket_id, r.revision FROM ticket_revision r
        JOIN ticket t ON t.id = r.ticket_id
        JOIN ticket_delivery d ON d.ticket_id = r.ticket_id AND d.revision = r.revision
        WHERE r.created_at < :horizon AND r.revision < t.revision
          AND d.stage = 'completed' AND d.status <> 'pending'
          AND EXISTS (SELECT 1 FROM ticket_delivery n
                      WHERE n.dedup_key = d.dedup_key AND n.id > d.id
                        AND n.backend_name IS NOT NULL)
          AND d.work_order_id IS NULL AND d.work_order_number IS NULL
          AND (d.incident_public_id IS NULL OR EXISTS (
                  SELECT 1 FROM ticket_delivery n
                  WHERE n.ticket_id = d.ticket_id AND n.revision > d.revision
                    AND n.incident_public_id IS NOT NULL))
          AND (d.incident_rec_id IS NULL OR EXISTS (
                  SELECT 1 FROM ticket_delivery n
                  WHERE n.ticket_id = d.ticket_id AND n.revision > d.revision
                    AND n.incident_rec_id IS NOT NULL))
        LIMIT :limit
        FOR UPDATE OF r, d SKIP LOCKED
    ), deliveries AS (
        DELETE FROM ticket_delivery d USING doomed
        WHERE d.ticket_id = doomed.ticket_id AND d.revision = doomed.revision RETURNING 1
    ), revisions AS (
        DELETE FROM ticket_revision r USING doomed WHERE r.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM revisions), (SELECT count(*) FROM deliveries)
    """
)

# A push's revisions of still-open tickets outlive it: they only lose the link to it.
_PUSHES = text(
    """
    WITH doomed AS (
        SELECT p.id FROM aggregation_push p
        WHERE p.generated_at < :horizon
          AND p.generated_at < (SELECT max(l.generated_at) FROM aggregation_push l
                                WHERE l.kind = p.kind)
          AND NOT EXISTS (SELECT 1 FROM critical_sample s WHERE s.push_id = p.id)
          AND NOT EXISTS (SELECT 1 FROM push_plan c WHERE c.push_id = p.id)
        ORDER BY p.generated_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), unlinked AS (
        UPDATE ticket_revision r SET push_id = NULL FROM doomed WHERE r.push_id = doomed.id
        RETURNING 1
    ), suppressions AS (
        DELETE FROM maintenance_suppression s USING doomed WHERE s.push_id = doomed.id
        RETURNING 1
    ), pushes AS (
        DELETE FROM aggregation_push p USING doomed WHERE p.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM pushes), (SELECT count(*) FROM suppressions),
           (SELECT count(*) FROM unlinked)
    """
)

_CONTROL_ACTIONS = text(
    """
    WITH doomed AS (
        SELECT id FROM control_action WHERE at < :horizon ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM control_action c USING doomed WHERE c.id = doomed.id
    """
)


async def _execute(
    session: AsyncSession, statement: TextClause, horizon: datetime, limit: int
) -> Any:  # a CursorResult; its rows' shapes are the statements' own
    return await (await session.connection()).execute(
        statement, {"horizon": horizon, "limit": limit}
    )


async def _samples(session: AsyncSession, horizon: datetime, limit: int) -> Mapping[str, int]:
    return {"critical_sample": (await _execute(session, _SAMPLES, horizon, limit)).rowcount}


async def _cleared_tickets(
    session: AsyncSession, horizon: datetime, limit: int
) -> Mapping[str, int]:
    tickets, revisions, deliveries = (
        await _execute(session, _CLEARED_TICKETS, horizon, limit)
    ).one()
    return {"ticket": tickets, "ticket_revision": revisions, "ticket_delivery": deliveries}


async def _superseded_revisions(
    session: AsyncSession, horizon: datetime, limit: int
) -> Mapping[str, int]:
    revisions, deliveries = (await _execute(session, _SUPERSEDED_REVISIONS, horizon, limit)).one()
    return {"ticket_revision": revisions, "ticket_delivery": deliveries}


async def _pushes(session: AsyncSession, horizon: datetime, limit: int) -> Mapping[str, int]:
    pushes, suppressions, _unlinked = (await _execute(session, _PUSHES, horizon, limit)).one()
    return {"aggregation_push": pushes, "maintenance_suppression": suppressions}


async def _control_actions(
    session: AsyncSession, horizon: datetime, limit: int
) -> Mapping[str, int]:
    return {"control_action": (await _execute(session, _CONTROL_ACTIONS, horizon, limit)).rowcount}


# In this order: tickets before the pushes their revisions point at.
STEPS = (
    PruneStep("critical_sample", _samples),
    PruneStep("ticket", _cleared_tickets),
    PruneStep("ticket_revision", _superseded_revisions),
    PruneStep("aggregation_push", _pushes),
    PruneStep("control_action", _control_actions),
)
