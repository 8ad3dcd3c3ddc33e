"""MX lookups as the engine sees them: cached, coalesced, timed, and failing fast."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from nullmx_milter.cache import LookupCache
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass, MxLookup

log = logging.getLogger(__name__)


class MxSource(Protocol):
    """Anything that can classify a domain's MX records (the DNS resolver, or a fake)."""

    timeout: float

    def lookup(self, domain: str) -> MxLookup: ...


class _Pending:
    """A lookup in flight that other threads may wait for."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: MxLookup | None = None


class MxLookupService:
    """One DNS query per uncached domain however many threads ask for it at once."""

    def __init__(
        self, source: MxSource, cache: LookupCache, health: DnsHealth, metrics: Metrics
    ) -> None:
        self._source = source
        self._cache = cache
        self._health = health
        self._metrics = metrics
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        metrics.track_cache_size(lambda: len(cache))

    def refuses_mail(self, domain: str) -> bool:
        """Whether the cache knows `domain` to receive no mail (no query, nothing counted)."""
        cached = self._cache.get(domain)
        return cached is not None and cached.mx_class in (MxClass.NULL_MX, MxClass.NXDOMAIN)

    def lookup(self, domain: str) -> MxLookup:
        """Classify `domain`; never blocks much longer than the DNS timeout."""
        started = time.perf_counter()
        cached = self._cache.get(domain)
        if cached is not None:
            self._metrics.count_cache("hit")
            self._metrics.observe_latency(time.perf_counter() - started)
            return cached
        with self._lock:
            pending = self._pending.get(domain)
            leader = pending is None
            if pending is None:
                pending = self._pending[domain] = _Pending()
        if leader:
            self._metrics.count_cache("miss")
            result = self._query(domain, pending)
        else:
            self._metrics.count_cache("coalesced")
            result = self._wait(pending)
        self._metrics.observe_latency(time.perf_counter() - started)
        return result

    def _query(self, domain: str, pending: _Pending) -> MxLookup:
        result = MxLookup(MxClass.ERROR, 0.0, "lookup did not complete")
        try:
            if not self._health.allow_query():
                self._metrics.count_fail_fast()
                result = MxLookup(MxClass.TIMEOUT, 0.0, "DNS is timing out; not waiting for it")
                return result
            started = time.perf_counter()
            result = self._source.lookup(domain)
            self._health.record(result.mx_class, time.perf_counter() - started)
            self._metrics.count_lookup(result.mx_class)
            self._cache.put(domain, result)
            return result
        finally:
            pending.result = result
            with self._lock:
                del self._pending[domain]
            pending.done.set()

    def _wait(self, pending: _Pending) -> MxLookup:
        if pending.done.wait(self._source.timeout) and pending.result is not None:
            return pending.result
        return MxLookup(MxClass.TIMEOUT, 0.0, "timed out waiting for a concurrent lookup")
