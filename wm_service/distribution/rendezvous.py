"""Rendezvous (highest-random-weight) hashing: which BE instance owns a dedup key.

Pure functions used by the assignment and failover steps of the distribution; a key always
maps to the same backend among the same candidates, and a change of candidates moves only
the keys of the backend that came or went.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def score(key: str, backend: str) -> int:
    """The pseudo-random weight of `backend` for `key` (stable across processes and runs)."""
    # blake2b, not hash(): Python's str hash is salted per process, and every WM process
    # must agree on the winner.
    digest = hashlib.blake2b(backend.encode() + b"\x00" + key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def winner(key: str, backends: Sequence[str]) -> str | None:
    """The backend with the highest weight for `key`; None when there is no backend."""
    if not backends:
        return None
    # The name breaks (astronomically unlikely) ties so the choice never depends on order.
    return max(backends, key=lambda name: (score(key, name), name))


def assign(keys: Iterable[str], backends: Sequence[str]) -> dict[str, str]:
    """The winner of each key; empty when there is no backend."""
    if not backends:
        return {}
    candidates = sorted(set(backends))
    return {key: w for key in set(keys) if (w := winner(key, candidates)) is not None}
