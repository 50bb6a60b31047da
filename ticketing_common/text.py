"""What text a client may send: the one home of the limits both services' inputs share.

Postgres refuses the NUL character (U+0000) in `text` and `jsonb`, so a NUL that reaches a
query is a database error (a 500) after work was done. Every boundary rejects it first: the
pydantic models and FastAPI query parameters with `NulFree`/`NUL_FREE`, msgspec structs with
`NUL_FREE`/`VISIBLE` patterns and CSV cells with `text_problem`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

NUL = "\x00"
# No NUL anywhere. The same regex works in Python, Rust (pydantic) and JSON Schema.
NUL_FREE = r"^[^\x00]*$"
# At least one character that is not white space, and no NUL (identifiers such as entity_id).
VISIBLE = r"^\s*[^\s\x00][^\x00]*$"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
NulFree = Annotated[str, Field(pattern=NUL_FREE)]


def text_problem(value: str, *, max_length: int = 200, required: bool = False) -> str | None:
    """Why `value` (a CSV cell, a query value) is not acceptable text, or None."""
    if NUL in value:
        return NUL_MESSAGE
    if required and not value.strip():
        return "required, and not only white space"
    if len(value) > max_length:
        return f"at most {max_length} characters"
    return None
