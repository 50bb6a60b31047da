"""Rendezvous hashing: stable, even, and moving only the share of a backend that comes or goes."""

from __future__ import annotations

from collections import Counter

from wm_service.distribution.rendezvous import assign, winner

KEYS = [f"snr-upstream:MKT{i % 7}-CCAP{i % 13}:US-{i}/0/1" for i in range(10_000)]


def test_winner_is_stable_and_independent_of_backend_order() -> None:
    """The same key and backends give the same winner whatever the order of the backends."""
    forward = [winner(key, ["be-1", "be-2", "be-3"]) for key in KEYS[:500]]
    backward = [winner(key, ["be-3", "be-2", "be-1"]) for key in KEYS[:500]]
    assert forward == backward
    assert forward == [winner(key, ["be-1", "be-2", "be-3"]) for key in KEYS[:500]]


def test_winner_without_backends_is_none() -> None:
    """With no backend available no key is assigned (the rows wait)."""
    assert winner("snr-upstream:x", []) is None
    assert assign(KEYS[:10], []) == {}


def test_keys_spread_evenly_over_two_backends() -> None:
    """10 000 keys split over two backends within 5 % of an even half."""
    counts = Counter(assign(KEYS, ["be-1", "be-2"]).values())
    assert set(counts) == {"be-1", "be-2"}
    for count in counts.values():
        assert abs(count - 5_000) < 250


def test_keys_spread_evenly_over_three_backends() -> None:
    """10 000 keys split over three backends within 5 % of an even third."""
    counts = Counter(assign(KEYS, ["be-1", "be-2", "be-3"]).values())
    assert set(counts) == {"be-1", "be-2", "be-3"}
    for count in counts.values():
        assert abs(count - 3_333) < 170


def test_adding_a_backend_moves_about_a_third_and_only_to_it() -> None:
    """A third backend takes about a third of the keys, and every moved key moves to it."""
    before = assign(KEYS, ["be-1", "be-2"])
    after = assign(KEYS, ["be-1", "be-2", "be-3"])
    moved = {key for key in KEYS if before[key] != after[key]}
    assert {after[key] for key in moved} == {"be-3"}
    assert abs(len(moved) - 3_333) < 170


def test_removing_a_backend_moves_only_its_keys() -> None:
    """Keys of the removed backend move; every other key keeps its backend."""
    before = assign(KEYS, ["be-1", "be-2", "be-3"])
    after = assign(KEYS, ["be-1", "be-3"])
    for key in KEYS:
        if before[key] == "be-2":
            assert after[key] in {"be-1", "be-3"}
        else:
            assert after[key] == before[key]
