"""CSV uploads (topology, maintenance windows): one pydantic model per row, errors per line.

A body is all or nothing: any bad row is a 422 listing up to 20 problems as `line[N].field`.
"""

from __future__ import annotations

import csv
import io
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ticketing_common.errors import ErrorDetail, ValidationFailed

RowModel = TypeVar("RowModel", bound=BaseModel)
_MAX_ERRORS = 20


def parse_csv_rows(
    body: bytes | bytearray,
    *,
    model: type[RowModel],
    columns: tuple[str, ...],
    required: tuple[str, ...],
    what: str,
    extra: dict[str, Any] | None = None,
) -> list[RowModel]:
    """Rows of `body` (header of `columns`) as `model`; `extra` is added to every row."""
    try:
        reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"invalid {what} CSV", details=[ErrorDetail("body", str(exc))]
        ) from exc
    header = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in columns]
    missing = [name for name in required if name not in header]
    if unknown or missing:
        problem = (
            f"unknown column(s): {', '.join(unknown)}"
            if unknown
            else f"{', '.join(missing)} missing"
        )
        raise ValidationFailed(
            f"invalid {what} CSV: {problem}", details=[ErrorDetail("header", problem)]
        )
    rows: list[RowModel] = []
    errors: list[ErrorDetail] = []
    for row in reader:
        line = reader.line_num
        values = {k.strip(): (v or "").strip() or None for k, v in row.items() if k}
        try:
            rows.append(model.model_validate({**values, **(extra or {})}))
        except ValidationError as exc:
            errors.extend(
                ErrorDetail(f"line[{line}].{'.'.join(map(str, e['loc']))}", e["msg"])
                for e in exc.errors()
            )
        if len(errors) >= _MAX_ERRORS:
            break
    if errors:
        raise ValidationFailed(
            f"invalid {what} CSV: {errors[0].field}: {errors[0].message}", details=errors
        )
    return rows
