"""Each service's OpenAPI document: every `$ref` resolves, tokens and real errors documented."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from be_service.config import BESettings
from be_service.main import create_app as create_be_app
from emulators.app import create_app as create_emulator_app
from tests.wm.conftest import wm_settings
from wm_service.main import create_app as create_wm_app

METHODS = {"get", "put", "post", "delete", "patch"}


def _documents() -> dict[str, dict[str, Any]]:
    # The documents are built without starting the apps: no database is ever reached.
    nowhere = "postgresql+asyncpg://nobody@127.0.0.1:9/none"
    apps: dict[str, FastAPI] = {
        "wm": create_wm_app(wm_settings(nowhere, Path("/nonexistent"))),
        "be": create_be_app(BESettings(database_url=nowhere)),
        "emulators": create_emulator_app(),
    }
    return {name: app.openapi() for name, app in apps.items()}


DOCUMENTS = _documents()


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_ref_resolves(name: str) -> None:
    """No `$ref` points at a schema the document does not hold (e.g. a nested `$defs`)."""
    document = DOCUMENTS[name]
    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(document)))
    schemas = document["components"]["schemas"]
    unresolved = [r for r in refs if r.removeprefix("#/components/schemas/") not in schemas]
    assert refs and unresolved == []


@pytest.mark.parametrize("name", ["wm", "be"])
def test_guarded_operations_declare_the_bearer_scheme_and_its_errors(name: str) -> None:
    """Every operation but the health probes needs the bearer token and documents 401/403."""
    document = DOCUMENTS[name]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS or path in ("/healthz", "/readyz"):
                continue
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            assert {"401", "403", "503"} <= set(operation["responses"]), (method, path)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_error_answers_use_the_one_error_shape(name: str) -> None:
    """Every documented 4xx/5xx answer is ErrorResponse, with an example of it."""
    seen = 0
    for operations in DOCUMENTS[name]["paths"].values():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = response["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
                assert set(content["example"]["error"]) == {"code", "message", "details"}
                seen += 1
    assert seen > 0
    assert "HTTPValidationError" not in DOCUMENTS[name]["components"]["schemas"]
