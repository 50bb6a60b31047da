"""The service processes' garbage-collector settings (checked in a fresh interpreter: they are
process-wide and would change how the rest of the suite runs)."""

from __future__ import annotations

import subprocess
import sys

from ticketing_common.runtime import YOUNG_COLLECTION_EVERY


def test_settling_freezes_what_exists_and_collects_the_young_generation_less_often() -> None:
    script = (
        "import gc\n"
        "from ticketing_common.runtime import settle_garbage_collector\n"
        "before = gc.get_threshold()\n"
        "settle_garbage_collector()\n"
        "print(before[0], gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:],"
        " gc.get_freeze_count() > 1000)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["700", str(YOUNG_COLLECTION_EVERY), "True", "True"]
