"""A bounded, thread-safe LRU cache of MX lookups that honours their TTLs."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from nullmx_milter.mx import MxLookup


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """How many lookups are kept and for how long; swapped whole by a config reload."""

    max_entries: int
    min_ttl: float
    max_ttl: float
    failure_ttl: float


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
        self.limits = CacheLimits(max_entries, min_ttl, max_ttl, failure_ttl)
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

    def configure(self, limits: CacheLimits) -> None:
        """New limits (a reload): entries stay; a smaller size takes effect at once."""
        with self._lock:
            self.limits = limits
            self._trim(limits.max_entries)

    def clear(self) -> None:
        """Forget every lookup (a reload changed the nameservers they came from)."""
        with self._lock:
            self._entries.clear()

    def lifetime(self, lookup: MxLookup, limits: CacheLimits | None = None) -> float:
        """How many seconds `lookup` stays cached."""
        limits = limits or self.limits
        if lookup.mx_class.is_failure:
            return limits.failure_ttl
        return min(max(lookup.ttl, limits.min_ttl), limits.max_ttl)

    def put(self, domain: str, lookup: MxLookup) -> None:
        """Remember `lookup`, evicting the least recently used entry when full."""
        limits = self.limits
        lifetime = self.lifetime(lookup, limits)
        if lifetime <= 0 or limits.max_entries <= 0:
            return
        expires = self._clock() + lifetime
        with self._lock:
            self._entries[domain] = (expires, lookup)
            self._entries.move_to_end(domain)
            self._trim(limits.max_entries)

    def _trim(self, max_entries: int) -> None:
        while len(self._entries) > max_entries:
            self._entries.popitem(last=False)
