"""A bounded, thread-safe LRU cache of MX lookups that honours their TTLs."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from nullmx_milter.mx import MxLookup


class LookupCache:
    """Lookups by domain until their TTL (clamped to [min_ttl, max_ttl]) runs out.

    DNS failures are kept for `failure_ttl` seconds only, so that a broken resolver
    is not hammered but recovery is seen quickly. `max_entries = 0` disables caching.
    """

    def __init__(
        self,
        max_entries: int,
        min_ttl: float,
        max_ttl: float,
        failure_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, MxLookup]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._failure_ttl = failure_ttl
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, domain: str) -> MxLookup | None:
        """The cached lookup, or None when absent or expired."""
        with self._lock:
            entry = self._entries.get(domain)
            if entry is None:
                return None
            expires, lookup = entry
            if expires <= self._clock():
                del self._entries[domain]
                return None
            self._entries.move_to_end(domain)
            return lookup

    def lifetime(self, lookup: MxLookup) -> float:
        """How many seconds `lookup` stays cached."""
        if lookup.mx_class.is_failure:
            return self._failure_ttl
        return min(max(lookup.ttl, self._min_ttl), self._max_ttl)

    def put(self, domain: str, lookup: MxLookup) -> None:
        """Remember `lookup`, evicting the least recently used entry when full."""
        lifetime = self.lifetime(lookup)
        if lifetime <= 0 or self._max_entries <= 0:
            return
        expires = self._clock() + lifetime
        with self._lock:
            self._entries[domain] = (expires, lookup)
            self._entries.move_to_end(domain)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
