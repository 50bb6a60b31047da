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


_ALLOCATIONS = """
import ctypes, sys
from ticketing_common.runtime import MMAP_THRESHOLD, settle_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "settled":
    assert settle_allocator()
elif sys.argv[1] == "mmap threshold only":
    libc.mallopt(-3, MMAP_THRESHOLD)
big = bytearray(16 * 2**20)
del big
before = libc.mallinfo2().hblkhd
second = bytearray(8 * 2**20)
mapped = libc.mallinfo2().hblkhd - before >= 8 * 2**20
del second
medium = bytearray(750_000)
del medium
kept = libc.mallinfo2().keepcost >= 750_000
print(mapped, kept)
"""


def _allocations(mode: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", _ALLOCATIONS, mode], capture_output=True, text=True, check=True
    ).stdout.split()


def test_settling_maps_big_buffers_and_keeps_freed_medium_ones_for_the_next() -> None:
    """glibc alone serves the 8 MB buffer from its heap once a 16 MB one was freed (and keeps
    that heap); settled, it maps it and unmaps it when freed. A freed 750 KB block at the top
    of the heap stays for the next one, which a fixed mmap threshold alone would give back."""
    assert _allocations("settled") == ["True", "True"]
    assert _allocations("default") == ["False", "True"]
    assert _allocations("mmap threshold only") == ["True", "False"]
