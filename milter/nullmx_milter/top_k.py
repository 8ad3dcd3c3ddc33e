"""The most frequent items of a stream in bounded memory (Space-Saving, Metwally et al. 2005)."""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopEntry:
    """An item's estimated count; the true count lies in [count - error, count]."""

    item: str
    count: int
    error: int


class SpaceSaving:
    """At most `capacity` counters over a stream of N items; thread-safe.

    A new item, when every counter is taken, replaces the item with the smallest count
    and inherits that count (+1), which is recorded as its possible overestimate. The
    guarantees: every item seen more than N / capacity times is tracked, and no count
    overestimates by more than N / capacity. An update costs a dict lookup under a lock
    for a tracked item; a replacement, amortised O(log capacity).
    """

    def __init__(self, capacity: int, promote_at: int = 0) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        self._capacity = capacity
        # Items whose guaranteed count (count - error) reached promote_at (0: not kept),
        # and a number that changes whenever that set does.
        self._promote_at = promote_at
        self._promoted: dict[str, None] = {}
        self._generation = 0
        self._lock = threading.Lock()
        # item -> [count, error]; lists so a tracked item's update is one increment.
        self._counters: dict[str, list[int]] = {}
        # One (count, item) per tracked item; the count may be stale (lower), never higher.
        self._heap: list[tuple[int, str]] = []
        self._total = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def total(self) -> int:
        """N: how many items were added since the start."""
        return self._total

    def error_bound(self) -> int:
        """N / capacity rounded up: no count is more than this above the truth."""
        if self._capacity == 0:
            return self._total
        return -(-self._total // self._capacity)

    def add(self, item: str) -> None:
        with self._lock:
            self._total += 1
            counter = self._counters.get(item)
            if counter is not None:
                counter[0] += 1
                if counter[0] - counter[1] == self._promote_at:
                    self._promoted[item] = None
                    self._generation += 1
                return
            if len(self._counters) < self._capacity:
                self._counters[item] = [1, 0]
                heapq.heappush(self._heap, (1, item))
            elif self._capacity == 0:
                return
            else:
                smallest = self._pop_smallest()
                self._counters[item] = [smallest + 1, smallest]
                heapq.heappush(self._heap, (smallest + 1, item))
            if self._promote_at == 1:
                self._promoted[item] = None
                self._generation += 1

    def _pop_smallest(self) -> int:
        """Remove the item with the smallest count (caller holds the lock); its count."""
        heap = self._heap
        while True:
            count, item = heap[0]
            current = self._counters[item][0]
            if current == count:
                heapq.heappop(heap)
                del self._counters[item]
                if self._promoted.pop(item, 0) is None:
                    self._generation += 1
                return count
            heapq.heapreplace(heap, (current, item))

    def resize(self, capacity: int) -> None:
        """Keep at most `capacity` counters from now on (the smallest go first)."""
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        with self._lock:
            self._capacity = capacity
            while len(self._counters) > capacity:
                self._pop_smallest()

    @property
    def generation(self) -> int:
        """Changes whenever the set of promoted items does (read without the lock)."""
        return self._generation

    def promoted(self) -> set[str]:
        """The items counted `promote_at` times for certain (none when it is 0)."""
        with self._lock:
            return set(self._promoted)

    def promote_at(self, count: int) -> None:
        """Promote items from `count` certain sightings on (0: none); applies at once."""
        with self._lock:
            if count == self._promote_at:
                return
            self._promote_at = count
            self._promoted = (
                {
                    item: None
                    for item, (seen, error) in self._counters.items()
                    if seen - error >= count
                }
                if count > 0
                else {}
            )
            self._generation += 1

    def top(self, limit: int) -> list[TopEntry]:
        """The `limit` largest counts, largest first (ties by item, for a stable order)."""
        if limit <= 0:
            return []
        with self._lock:
            snapshot = [(counter[0], counter[1], item) for item, counter in self._counters.items()]
        best = heapq.nsmallest(limit, snapshot, key=lambda entry: (-entry[0], entry[2]))
        return [TopEntry(item, count, error) for count, error, item in best]

    def at_least(self, count: int) -> list[tuple[str, int]]:
        """Every tracked item whose guaranteed count (count - error) is `count` or more."""
        with self._lock:
            return [
                (item, counter[0])
                for item, counter in self._counters.items()
                if counter[0] - counter[1] >= count
            ]

    def __len__(self) -> int:
        return len(self._counters)
