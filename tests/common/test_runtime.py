"""The service processes' garbage-collector and allocator settings (checked in fresh
interpreters: they are process-wide and would change how the rest of the suite runs)."""

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


_ALLOCATION_AFTER_A_BIG_ONE = """
import ctypes, sys
from ticketing_common.runtime import settle_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "settled":
    assert settle_allocator()
big = bytearray(16 * 2**20)
del big
before = libc.mallinfo2().hblkhd
second = bytearray(8 * 2**20)
print(libc.mallinfo2().hblkhd - before >= 8 * 2**20)
"""


def test_settling_keeps_big_buffers_mapped_after_a_bigger_one_was_freed() -> None:
    """glibc alone serves the 8 MB buffer from its heap once a 16 MB one was freed (and
    keeps that heap); settled, it maps it and unmaps it when freed."""

    def mapped(mode: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", _ALLOCATION_AFTER_A_BIG_ONE, mode],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert mapped("settled") == "True"
    assert mapped("default") == "False"
