"""The one way an unset token is locked (ticketing_common.auth): random, unknown, warned about."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from ticketing_common.auth import token_or_locked


def test_a_set_token_is_kept() -> None:
    """A configured token is used as it is, without a warning."""
    assert token_or_locked(SecretStr("s3t"), variable="X_TOKEN").get_secret_value() == "s3t"


@pytest.mark.parametrize("value", [None, SecretStr("")])
def test_an_unset_or_empty_token_becomes_an_unknown_one_with_a_warning(
    value: SecretStr | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Unset and empty both lock: a long random token, different each time, and a warning."""
    caplog.set_level(logging.WARNING)
    first = token_or_locked(value, variable="X_TOKEN").get_secret_value()
    second = token_or_locked(value, variable="X_TOKEN").get_secret_value()
    assert len(first) >= 32 and first != second
    assert "X_TOKEN is not set" in caplog.text and first not in caplog.text
