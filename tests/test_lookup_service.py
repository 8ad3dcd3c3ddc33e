"""MxLookupService: coalescing, waiting bounded by the timeout, no lock across a query."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from nullmx_milter.cache import LookupCache
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass, MxLookup


class GatedSource:
    """A fake DNS source whose lookups block until `release` is set."""

    def __init__(self, timeout: float = 5.0, result: MxLookup | None = None) -> None:
        self.timeout = timeout
        self.result = result or MxLookup(MxClass.NULL_MX, 300.0, "0 .")
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def lookup(self, domain: str) -> MxLookup:
        with self._lock:
            self.calls.append(domain)
        self.started.set()
        if not self.release.wait(10):
            raise RuntimeError("test never released the source")
        return self.result


def make_service(source: GatedSource) -> tuple[MxLookupService, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, {"version": "test"})
    cache = LookupCache(100, 5.0, 3600.0, 5.0)
    return MxLookupService(source, cache, DnsHealth(0, 1.0), metrics), registry


def cache_requests(registry: CollectorRegistry, result: str) -> float:
    value = registry.get_sample_value("nullmx_cache_requests_total", {"result": result})
    assert value is not None, result
    return value


def wait_for_waiters(registry: CollectorRegistry, expected: int) -> None:
    """Poll until `expected` callers have joined the lookup in flight."""
    deadline = threading.Event()
    for _ in range(1000):
        if cache_requests(registry, "coalesced") >= expected:
            return
        deadline.wait(0.01)
    raise AssertionError("the callers never joined the pending lookup")


def test_concurrent_callers_share_one_query() -> None:
    source = GatedSource()
    service, registry = make_service(source)
    callers = 100
    with ThreadPoolExecutor(callers) as pool:
        futures = [pool.submit(service.lookup, "null.test") for _ in range(callers)]
        assert source.started.wait(5)
        wait_for_waiters(registry, callers - 1)
        source.release.set()
        results = [future.result(5) for future in futures]
    assert source.calls == ["null.test"]
    assert all(result is source.result for result in results)
    assert cache_requests(registry, "miss") == 1
    assert cache_requests(registry, "coalesced") == callers - 1
    # Afterwards the answer comes from the cache.
    assert service.lookup("null.test") is source.result
    assert cache_requests(registry, "hit") == 1
    assert registry.get_sample_value("nullmx_dns_lookups_total", {"result": "null_mx"}) == 1


def test_waiter_gives_up_after_the_lookup_timeout() -> None:
    source = GatedSource(timeout=0.2)
    service, registry = make_service(source)
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(service.lookup, "slow.test")
        assert source.started.wait(5)
        waited = service.lookup("slow.test")
        source.release.set()
        assert leader.result(5) is source.result
    assert waited.mx_class is MxClass.TIMEOUT
    assert cache_requests(registry, "coalesced") == 1


def test_no_lock_is_held_across_a_query() -> None:
    source = GatedSource()
    service, _registry = make_service(source)
    other = MxLookup(MxClass.MX, 300.0, "10 mx.real.test.")
    service._cache.put("real.test", other)
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(service.lookup, "slow.test")
        assert source.started.wait(5)
        # Another domain, cached or not in flight, is not stuck behind the slow query.
        assert service.lookup("real.test") is other
        source.release.set()
        blocked.result(5)


class FailingSource(GatedSource):
    """A gated source with a bug: once released, every lookup raises."""

    def lookup(self, domain: str) -> MxLookup:
        super().lookup(domain)
        raise RuntimeError("bug in the source")


def test_a_failing_query_hands_its_waiters_an_error_and_is_retried() -> None:
    source = FailingSource()
    service, registry = make_service(source)
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(service.lookup, "null.test")
        assert source.started.wait(5)
        waiter = pool.submit(service.lookup, "null.test")
        wait_for_waiters(registry, 1)
        source.release.set()
        with pytest.raises(RuntimeError, match="bug in the source"):
            leader.result(5)
        # The waiter is not left hanging until its timeout, nor handed the exception.
        assert waiter.result(5).mx_class is MxClass.ERROR
    # Nothing was cached and nothing is left pending: the next caller queries again.
    with pytest.raises(RuntimeError):
        service.lookup("null.test")
    assert source.calls == ["null.test", "null.test"]
    assert cache_requests(registry, "miss") == 2
