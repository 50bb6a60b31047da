"""The `ticketing` CLI: sample files, push kind inference, one-line errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import click
import pytest
import typer
import typer.rich_utils
from typer.testing import CliRunner

from tests.support.servers import free_port
from ticketing_cli.main import _push_kind, app

runner = CliRunner()


def test_sample_writes_topology_and_three_aggregations(tmp_path: Path) -> None:
    """`ticketing sample` writes the inventory and one push per kind, entries included."""
    result = runner.invoke(app, ["sample", "--out", str(tmp_path), "--service-groups", "5"])
    assert result.exit_code == 0, result.output
    snr = json.loads((tmp_path / "snr-upstream.json").read_text())
    assert len(snr["entries"]) == 5 * 4
    topology = json.loads((tmp_path / "topology.json").read_text())
    assert len(topology["elements"]) == 5 * (2 + 4)
    assert {p.name for p in tmp_path.iterdir()} == {
        "topology.json",
        "snr-upstream.json",
        "us-service-group.json",
        "ds-service-group.json",
    }


def test_push_kind_comes_from_the_file_name() -> None:
    """Without --kind, the kind named in the file name is used."""
    assert _push_kind(Path("x/us-service-group.json"), None) == "us-service-group"


def test_push_refuses_a_file_named_for_another_kind() -> None:
    """--kind snr-upstream on a us-service-group file is refused, not misread."""
    with pytest.raises(typer.BadParameter, match="us-service-group"):
        _push_kind(Path("us-service-group.json"), "snr-upstream")


def test_push_without_kind_on_an_unnamed_file_asks_for_it() -> None:
    """A file whose name says no kind needs --kind."""
    with pytest.raises(typer.BadParameter, match="--kind"):
        _push_kind(Path("export.csv"), None)


def test_unreachable_wm_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """`status` against a WM that is not there prints one line, no traceback."""
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(
        app, ["status", "--wm-url", url, "--wm-token", "x", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "cannot reach the service" in result.output
    assert "Traceback" not in result.output


def test_a_csv_push_without_its_id_and_time_says_which_flags_it_needs(tmp_path: Path) -> None:
    """`ticketing push x.csv` alone names --aggregation-id and --generated-at with an example."""
    csv_file = tmp_path / "snr-upstream.csv"
    csv_file.write_text("entity_id,at,value\nE1,2026-12-01T12:00:00Z,20\n")
    result = runner.invoke(app, ["push", str(csv_file), "--token", "t"])
    assert result.exit_code != 0
    assert "--aggregation-id" in result.output and "--generated-at" in result.output
    assert "ISO 8601" in result.output


@pytest.mark.parametrize("command", [[], ["up"], ["maintenance"]])
def test_help_paragraphs_wrap_cleanly_on_an_80_column_terminal(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Help paragraphs are wrapped by the terminal's width alone: the docstrings' own line
    breaks left every long paragraph ragged (a line cut after a few words)."""
    # Typer's console 80 columns wide, whatever TERMINAL_WIDTH says (colours: conftest.py).
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 80)
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    # The usage and help text, before the option boxes.
    head = click.unstyle(result.output).split("╭")[0]
    lines = [line.strip() for line in head.splitlines()]
    # Rich fills every line of a paragraph to near the width, but its last one.
    ragged = [
        line for line, after in itertools.pairwise(lines) if line and after and len(line) < 50
    ]
    assert len([line for line in lines if line]) >= 3 and not ragged, head
