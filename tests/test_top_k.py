"""Space-Saving: its guarantees against exact counts, resizing and concurrent updates."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nullmx_milter.top_k import SpaceSaving, TopEntry


def test_exact_while_under_capacity() -> None:
    counter = SpaceSaving(4)
    for item in "aabbbc":
        counter.add(item)
    assert counter.top(10) == [TopEntry("b", 3, 0), TopEntry("a", 2, 0), TopEntry("c", 1, 0)]
    assert counter.top(1) == [TopEntry("b", 3, 0)]
    assert counter.top(0) == []
    assert counter.total == 6


def test_new_item_replaces_the_smallest_and_inherits_its_count() -> None:
    counter = SpaceSaving(2)
    for item in "aaab":
        counter.add(item)
    counter.add("c")
    assert counter.top(2) == [TopEntry("a", 3, 0), TopEntry("c", 2, 1)]
    assert counter.error_bound() == 3  # N = 5 over 2 counters, rounded up


def test_zero_capacity_tracks_nothing() -> None:
    counter = SpaceSaving(0)
    counter.add("a")
    assert counter.top(5) == []
    assert len(counter) == 0


def test_resize_drops_the_smallest() -> None:
    counter = SpaceSaving(3)
    for item in "aaabbc":
        counter.add(item)
    counter.resize(1)
    assert counter.top(5) == [TopEntry("a", 3, 0)]
    with pytest.raises(ValueError, match="capacity"):
        counter.resize(-1)


def test_at_least_counts_only_what_is_certain() -> None:
    counter = SpaceSaving(1)
    for item in "aaa":
        counter.add(item)
    counter.add("b")  # b inherits a's 3: count 4, error 3, certain 1
    assert counter.at_least(1) == [("b", 4)]
    assert counter.at_least(2) == []


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from("abcdefghijklmnop"), max_size=300),
    st.integers(min_value=1, max_value=8),
)
def test_space_saving_guarantees(stream: list[str], capacity: int) -> None:
    counter = SpaceSaving(capacity)
    for item in stream:
        counter.add(item)
    exact = Counter(stream)
    entries = {entry.item: entry for entry in counter.top(capacity)}
    bound = len(stream) / capacity
    assert len(entries) == min(capacity, len(exact))
    for item, true_count in exact.items():
        if true_count > bound:
            assert item in entries, f"{item} seen {true_count} > N/m = {bound} times"
    for entry in entries.values():
        assert entry.count - entry.error <= exact[entry.item] <= entry.count
        assert entry.error <= bound
    # Every increment lands on exactly one counter.
    assert sum(entry.count for entry in entries.values()) == len(stream)


def test_concurrent_adds_lose_nothing() -> None:
    counter = SpaceSaving(8)

    def work(offset: int) -> None:
        for index in range(5000):
            counter.add(f"d{(index + offset) % 5}")

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.total == 20000
    assert sum(entry.count for entry in counter.top(8)) == 20000


def test_promotion_tracks_items_counted_often_enough_for_certain() -> None:
    counter = SpaceSaving(2, promote_at=2)
    counter.add("a")
    before = counter.generation
    assert counter.promoted() == set()
    counter.add("a")
    assert counter.promoted() == {"a"}
    assert counter.generation != before
    counter.add("a")
    counter.add("b")
    counter.add("c")  # replaces b (count 1): c has count 2 but only 1 for certain
    assert counter.promoted() == {"a"}
    counter.resize(1)
    assert counter.promoted() == {"a"}
    counter.add("d")  # replaces a (count 3, so d has 4, 1 for certain): a is gone
    assert counter.promoted() == set()
    counter.promote_at(1)
    assert counter.promoted() == {"d"}
    counter.promote_at(0)
    assert counter.promoted() == set()
