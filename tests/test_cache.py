"""LookupCache: TTL clamping, negative answers, failures, expiry and LRU order (fake clock)."""

from __future__ import annotations

import pytest

from nullmx_milter.cache import CacheLimits, LookupCache
from nullmx_milter.mx import MxClass, MxLookup


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(
    clock: FakeClock,
    max_entries: int = 10,
    min_ttl: float = 5.0,
    max_ttl: float = 3600.0,
    failure_ttl: float = 2.0,
) -> LookupCache:
    return LookupCache(max_entries, min_ttl, max_ttl, failure_ttl, clock=clock)


@pytest.mark.parametrize(
    ("mx_class", "ttl", "lifetime"),
    [
        pytest.param(MxClass.MX, 300.0, 300.0, id="record-ttl-kept"),
        pytest.param(MxClass.NULL_MX, 1.0, 5.0, id="raised-to-floor"),
        pytest.param(MxClass.MX, 86400.0, 3600.0, id="cut-to-ceiling"),
        pytest.param(MxClass.NXDOMAIN, 60.0, 60.0, id="nxdomain-by-soa-minimum"),
        pytest.param(MxClass.IMPLICIT, 0.0, 5.0, id="nodata-without-soa-floor"),
        pytest.param(MxClass.SERVFAIL, 300.0, 2.0, id="servfail-failure-ttl"),
        pytest.param(MxClass.TIMEOUT, 0.0, 2.0, id="timeout-failure-ttl"),
        pytest.param(MxClass.ERROR, 9999.0, 2.0, id="error-failure-ttl"),
    ],
)
def test_lifetime(mx_class: MxClass, ttl: float, lifetime: float) -> None:
    assert make_cache(FakeClock()).lifetime(MxLookup(mx_class, ttl)) == lifetime


def test_entry_lives_exactly_its_lifetime() -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    lookup = MxLookup(MxClass.NULL_MX, 30.0, "0 .")
    cache.put("null.test", lookup)
    clock.now += 29.9
    assert cache.get("null.test") is lookup
    clock.now += 0.1
    assert cache.get("null.test") is None
    assert len(cache) == 0


def test_negative_answer_is_cached_by_its_soa_ttl() -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    cache.put("nothere.test", MxLookup(MxClass.NXDOMAIN, 60.0, "NXDOMAIN"))
    clock.now += 59
    cached = cache.get("nothere.test")
    assert cached is not None
    assert cached.mx_class is MxClass.NXDOMAIN
    clock.now += 1
    assert cache.get("nothere.test") is None


def test_failure_is_remembered_only_briefly() -> None:
    clock = FakeClock()
    cache = make_cache(clock, failure_ttl=2.0)
    cache.put("broken.test", MxLookup(MxClass.SERVFAIL, 300.0, "SERVFAIL"))
    clock.now += 1.9
    cached = cache.get("broken.test")
    assert cached is not None
    assert cached.mx_class is MxClass.SERVFAIL
    clock.now += 0.1
    assert cache.get("broken.test") is None


def test_failure_ttl_zero_caches_no_failure() -> None:
    cache = make_cache(FakeClock(), failure_ttl=0.0)
    cache.put("broken.test", MxLookup(MxClass.TIMEOUT, 0.0))
    assert cache.get("broken.test") is None
    assert len(cache) == 0


def test_max_entries_zero_disables_the_cache() -> None:
    cache = make_cache(FakeClock(), max_entries=0)
    cache.put("real.test", MxLookup(MxClass.MX, 300.0))
    assert cache.get("real.test") is None


def test_least_recently_used_goes_first() -> None:
    cache = make_cache(FakeClock(), max_entries=3)
    for name in ("a.test", "b.test", "c.test"):
        cache.put(name, MxLookup(MxClass.MX, 300.0))
    assert cache.get("a.test") is not None  # a is now the most recently used
    cache.put("d.test", MxLookup(MxClass.MX, 300.0))
    assert len(cache) == 3
    assert cache.get("b.test") is None
    assert all(cache.get(name) is not None for name in ("a.test", "c.test", "d.test"))


def test_put_again_refreshes_value_and_order() -> None:
    clock = FakeClock()
    cache = make_cache(clock, max_entries=2)
    cache.put("a.test", MxLookup(MxClass.MX, 10.0))
    cache.put("b.test", MxLookup(MxClass.MX, 300.0))
    fresh = MxLookup(MxClass.NULL_MX, 300.0)
    cache.put("a.test", fresh)
    cache.put("c.test", MxLookup(MxClass.MX, 300.0))
    assert cache.get("b.test") is None
    clock.now += 100
    assert cache.get("a.test") is fresh


def test_new_limits_apply_at_once_and_keep_what_fits() -> None:
    cache = make_cache(FakeClock(), max_entries=3)
    for name in ("a.test", "b.test", "c.test"):
        cache.put(name, MxLookup(MxClass.MX, 300.0))
    limits = CacheLimits(max_entries=2, min_ttl=50.0, max_ttl=60.0, failure_ttl=1.0)
    cache.configure(limits)
    assert cache.limits == limits
    assert len(cache) == 2
    assert cache.get("a.test") is None
    assert cache.get("b.test") is not None and cache.get("c.test") is not None
    assert cache.lifetime(MxLookup(MxClass.MX, 1.0)) == 50.0
