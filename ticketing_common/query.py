"""Query strings are part of the contract: an unknown parameter is a 422 naming it.

Without this, a typo or a filter that does not exist (`?status=Error` on a list that filters
by `stage`) is silently ignored and the client reads an unfiltered list as if it were filtered.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ticketing_common.errors import ErrorDetail, ValidationFailed


def reject_unknown_query(request: Request) -> None:
    """A FastAPI dependency: 422 when the query string holds a parameter the route (with its
    dependencies) does not declare. Use as `dependencies=[Depends(reject_unknown_query)]`."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _declared_query(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ValidationFailed(
            f"unknown query parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            details=[ErrorDetail(f"query.{name}", "unknown query parameter") for name in unknown],
        )


def _declared_query(dependant: Dependant) -> set[str]:
    """The query parameters a route and its dependencies declare (by their public names)."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(param.alias for param in current.query_params)
        pending.extend(current.dependencies)
    return names
