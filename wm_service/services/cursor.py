"""Opaque pagination cursors: the sort key of the last item of a page, base64url-encoded.

Keyset pagination (WHERE key < cursor ORDER BY key DESC) stays correct and fast while new
rows arrive, unlike OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ticketing_common.errors import ErrorDetail, ValidationFailed


def encode(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode(cursor: str, *, size: int) -> list[Any]:
    """The key in `cursor` (a list of `size` JSON values); 422 naming `cursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _invalid() from exc
    if not isinstance(key, list) or len(key) != size:
        raise _invalid()
    return key


def _invalid() -> ValidationFailed:
    return ValidationFailed(
        "invalid cursor", details=[ErrorDetail("cursor", "use next_cursor from a previous page")]
    )
