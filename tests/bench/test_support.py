"""The benchmarks' own helpers that decide what a printed figure means."""

from __future__ import annotations

import pytest

from bench.support import DatabaseCpu, database_of


@pytest.mark.parametrize(
    ("title", "database"),
    [
        ("postgres: postgres wm 127.0.0.1(51234) idle", "wm"),
        ("postgres: postgres be_be1 127.0.0.1(40112) UPDATE", "be_be1"),
        ("postgres: app wm [local] idle in transaction", "wm"),
        ("postgres: postgres wm ::1(5544) idle", "wm"),
        ("postgres: autovacuum worker wm", None),
        ("postgres: checkpointer", None),
        ("postgres: io worker 0", None),
        ("postgres: walwriter   ", None),
    ],
)
def test_a_backends_title_names_its_database_and_the_servers_own_processes_none(
    title: str, database: str | None
) -> None:
    assert database_of(title) == database


def test_the_split_ranks_the_databases_and_leaves_the_rest_as_measured() -> None:
    meter = DatabaseCpu(postmaster_pid=0)
    meter.seconds = {"be_be1": 3.0, "wm": 5.5, "be_be2": 3.1}
    assert meter.split(11.7) == pytest.approx(
        {"wm": 5.5, "be_be2": 3.1, "be_be1": 3.0, "rest": 0.1}
    )
    assert list(meter.split(11.7)) == ["wm", "be_be2", "be_be1", "rest"]
    # Not hidden: a total smaller than its parts means the spans differed.
    assert meter.split(10.0)["rest"] == pytest.approx(-1.6)
