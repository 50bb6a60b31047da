"""Opaque keyset-pagination cursors for both services' list endpoints.

A cursor is the sort key of the last item of a page, as a base64url-encoded JSON list whose
shape each list declares once (`KeysetCursor(int)`, `KeysetCursor(datetime, UUID)`). Keyset
pagination (WHERE key < cursor ORDER BY key DESC) stays correct and fast while rows arrive.
Anything a client can put in `?cursor=` either decodes to that shape or is a 422 naming
`cursor`: never a value the database would refuse (a 500).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ticketing_common.errors import ErrorDetail, ValidationFailed
from ticketing_common.text import NUL

# Postgres bigint: a larger id cannot exist, and binding one fails in the driver.
_BIGINT = (-(2**63), 2**63 - 1)
# A real cursor is well under 200 characters; a longer one is not ours.
_MAX_LENGTH = 512


def _int(value: Any) -> int:
    # bool is an int to Python but not a key; a float (1e23) is not an id either.
    if type(value) is not int or not _BIGINT[0] <= value <= _BIGINT[1]:
        raise ValueError("not a bigint")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or NUL in value:
        raise ValueError("not a text key")
    return value


def _datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_str(value))
    if parsed.tzinfo is None:
        raise ValueError("a timestamp key carries its offset")
    # In UTC here, so that a far date with an offset overflows now (a 422), not in the driver.
    return parsed.astimezone(UTC)


def _uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(_str(value))


_PARSERS: dict[type, Callable[[Any], Any]] = {
    int: _int,
    str: _str,
    datetime: _datetime,
    uuid.UUID: _uuid,
}


@dataclass(frozen=True, init=False)
class KeysetCursor:
    """The cursor of one list: its key's parts, in sort order, by type."""

    shape: tuple[type, ...]

    def __init__(self, *shape: type) -> None:
        unknown = [t for t in shape if t not in _PARSERS]
        if not shape or unknown:
            raise TypeError(f"cursor parts must be among {list(_PARSERS)}, not {unknown}")
        object.__setattr__(self, "shape", shape)

    def encode(self, *key: object) -> str:
        """The cursor of the page that follows the item whose sort key is `key`."""
        wrong = len(key) != len(self.shape) or any(
            not isinstance(k, kind) or isinstance(k, bool)
            for kind, k in zip(self.shape, key, strict=True)
        )
        if wrong:
            # Optional model ids type as `int | None`; a None here is a bug, never a page.
            raise TypeError(f"a cursor key is {self.shape}, not {key!r}")
        parts = [k.isoformat() if isinstance(k, datetime) else k for k in key]
        text = json.dumps([str(p) if isinstance(p, uuid.UUID) else p for p in parts])
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[Any, ...]:
        """The key in `cursor`, typed as declared; a 422 naming `cursor` on anything else."""
        try:
            if len(cursor) > _MAX_LENGTH:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            key = json.loads(raw)
            if not isinstance(key, list) or len(key) != len(self.shape):
                raise ValueError("wrong shape")
            return tuple(_PARSERS[kind](part) for kind, part in zip(self.shape, key, strict=True))
        except (binascii.Error, ValueError, OverflowError, RecursionError) as exc:
            # ValueError covers non-ASCII text, bad UTF-8 and JSON, and bad keys.
            raise ValidationFailed(
                "invalid cursor",
                details=[ErrorDetail("cursor", "use next_cursor of a previous page")],
            ) from exc
