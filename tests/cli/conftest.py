"""What every CLI test reads is Typer's plain output: no colours, whatever the environment
asks for (FORCE_COLOR, PY_COLORS, GITHUB_ACTIONS make Typer force a terminal, and escape
codes then sit inside the words the tests look for)."""

from __future__ import annotations

import pytest
import typer.rich_utils


@pytest.fixture(autouse=True)
def plain_typer_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", False)
