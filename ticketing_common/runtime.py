"""Process-wide tuning of a service process, applied once before it starts serving."""

from __future__ import annotations

import ctypes
import gc

# Container allocations (net) between two young collections; CPython's default is 700. A
# 20 000-ticket push allocates millions of lists, dicts and structs that reference counting
# frees anyway: at 700 the WM ran ~350 young and 3 full collections per such push, 0.3-0.4 s
# of it (0.04 s at this value). A young generation this size is a few MB at most.
YOUNG_COLLECTION_EVERY = 50_000


def settle_garbage_collector() -> None:
    """Move everything built so far (modules, the app, its routes: never garbage) out of the
    collector's sight, so a full collection walks only what the requests created, and collect
    the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)


# glibc's malloc serves a block this large or larger with its own mmap, unmapped when freed.
# Left alone it raises that threshold to the size of each such block freed (up to 32 MB),
# so after one big push the next push's buffers came from the heap and stayed there: the
# second 100 000-entry push peaked 12 MiB above the first (measured, VmHWM). Not lower: a
# mapped block pays its page faults on every use (a 150 KB buffer 2 -> 95 us, measured), and
# request bodies of a few hundred KB are common.
MMAP_THRESHOLD = 1024 * 1024
# Fixing the mmap threshold also fixes this one at its default of 128 KiB: freeing any
# block at the top of the heap then gave the memory back, and the next such block faulted it
# in again (a 750 KB buffer 12 -> 330 us, measured). Twice the mmap threshold, as glibc
# keeps them when it adjusts both itself.
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
# mallopt's parameter numbers, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def settle_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds (see above); False where libc is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
