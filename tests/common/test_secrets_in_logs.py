"""Secrets never reach the logs: scrubbed lines and tracebacks, hidden SQL parameters."""

from __future__ import annotations

import io
import logging

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from ticketing_common.db import create_engine
from ticketing_common.logging import ScrubbingFormatter, scrub

SECRET = "S3CRET-value-42"


def _log_through_formatter(emit: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ScrubbingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        assert callable(emit)
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize(
    "line",
    [
        f"Authorization: Bearer {SECRET}",
        f"login with password={SECRET}&user=x",
        f'{{"client_secret": "{SECRET}"}}',
        f"postgresql://ticketing:{SECRET}@db:5432/wm",
    ],
)
def test_scrub_masks_every_secret_shape(line: str) -> None:
    """Bearer tokens, form and JSON secrets and URL passwords are masked."""
    assert SECRET not in scrub(line)


def test_tracebacks_are_scrubbed_too() -> None:
    """An exception quoting a token is logged with its traceback, token masked."""

    def emit(logger: logging.Logger) -> None:
        try:
            raise RuntimeError(f"upstream refused Bearer {SECRET}")
        except RuntimeError:
            logger.exception("call failed")

    output = _log_through_formatter(emit)
    assert "RuntimeError: upstream refused Bearer ***" in output
    assert SECRET not in output


async def test_failed_statement_does_not_quote_its_parameters(wm_database_url: str) -> None:
    """A database error's text omits the bind values (they may be tokens)."""
    engine = create_engine(wm_database_url)
    try:
        async with engine.connect() as conn:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as failure:
                await conn.execute(text("SELECT CAST(:token AS text), 1 / 0"), {"token": SECRET})
    finally:
        await engine.dispose()
    assert SECRET not in str(failure.value)
