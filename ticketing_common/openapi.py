"""The OpenAPI document every service publishes: the real error shape, resolvable `$ref`s.

FastAPI documents its own validation error body (`HTTPValidationError`), which none of our
services returns; this module documents the one error shape of ticketing_common.errors for
the statuses each operation can answer, and hoists schemas nested under `$defs` (from
hand-written request bodies) into the components, so every `$ref` in the document resolves.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_COMPONENTS = "#/components/schemas/"

# Why an operation answers each status, shown in /docs beside the example body.
_REASONS: dict[int, tuple[str, str]] = {
    401: ("unauthorized", "missing bearer token (Authorization: Bearer <token>)"),
    403: ("forbidden", "the bearer token is not valid for this endpoint"),
    404: ("not_found", "no such resource"),
    405: ("http_405", "Method Not Allowed"),
    409: ("conflict", "the request conflicts with the current state"),
    413: ("payload_too_large", "body exceeds the limit"),
    415: ("unsupported_media_type", "content-type is not accepted"),
    422: ("validation_error", "invalid request: field: why"),
    503: ("unavailable", "the database is unavailable; retry later"),
}


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorItem]


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of every service (ticketing_common/errors.py)."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the statuses it answers beyond the ones added for all."""
    return {status: _error_response(status) for status in statuses}


def _error_response(status: int) -> dict[str, Any]:
    code, message = _REASONS[status]
    details = [{"field": "field", "message": "why"}] if status == 422 else []
    return {
        "description": message,
        "content": {
            "application/json": {
                "schema": {"$ref": _COMPONENTS + "ErrorResponse"},
                "example": {"error": {"code": code, "message": message, "details": details}},
            }
        },
    }


# The health probes answer in their own shape ({"status": …}), never with the error body.
_HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


def install_openapi(app: FastAPI, *, uses_database: bool) -> None:
    """Replace `app.openapi` by one that documents the errors each operation can answer."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorResponse"] = ErrorResponse.model_json_schema(
                ref_template=_COMPONENTS + "{model}"
            )
            _hoist_defs(document)
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            for path, operations in document.get("paths", {}).items():
                for operation in operations.values():
                    _document_errors(
                        operation, uses_database=uses_database and path not in _HEALTH_PATHS
                    )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_errors(operation: dict[str, Any], *, uses_database: bool) -> None:
    responses = operation.setdefault("responses", {})
    statuses = set()
    if operation.get("security"):
        statuses |= {401, 403}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        statuses.add(404)
    if uses_database:
        statuses.add(503)
    for status in statuses:
        responses[str(status)] = _error_response(status)
    # Statuses a route declared itself (409, 413, …) get the real shape too.
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400 and int(status) in _REASONS:
            response.update(_error_response(int(status)))


def _hoist_defs(node: Any, components: dict[str, Any] | None = None) -> None:
    """Move every nested `$defs` into the components and point its `$ref`s there."""
    if components is None:
        components = node.setdefault("components", {}).setdefault("schemas", {})
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            components.setdefault(name, schema)
            _hoist_defs(schema, components)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = _COMPONENTS + ref.removeprefix("#/$defs/")
        for value in list(node.values()):
            _hoist_defs(value, components)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, components)
