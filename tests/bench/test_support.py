"""The benchmarks' own helpers that decide what a printed figure means."""

from __future__ import annotations

import pytest

from bench.support import database_of


@pytest.mark.parametrize(
    ("title", "database"),
    [
        ("postgres: postgres wm 127.0.0.1(51234) idle", "wm"),
        ("postgres: postgres be_be1 127.0.0.1(40112) UPDATE", "be_be1"),
        ("postgres: app wm [local] idle in transaction", "wm"),
        ("postgres: postgres wm ::1(5544) idle", "wm"),
        ("postgres: autovacuum worker wm", "other"),
        ("postgres: checkpointer", "other"),
        ("postgres: io worker 0", "other"),
        ("postgres: walwriter   ", "other"),
    ],
)
def test_a_backends_title_names_its_database_and_the_servers_own_processes_are_other(
    title: str, database: str
):
    assert database_of(title) == database
