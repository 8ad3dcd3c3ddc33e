"""LookupCache at its edges: lifetimes of zero and under a second, one entry, eviction order."""

from __future__ import annotations

import pytest

from nullmx_milter.cache import LookupCache
from nullmx_milter.mx import MxClass, MxLookup


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def lookup(mx_class: MxClass = MxClass.MX, ttl: float = 300.0) -> MxLookup:
    return MxLookup(mx_class, ttl, "x")


@pytest.mark.parametrize(
    ("max_entries", "failure_ttl", "answer", "kept"),
    [
        pytest.param(10, 5.0, lookup(ttl=0.5), 1, id="ttl-under-a-second"),
        pytest.param(10, 0.5, lookup(MxClass.SERVFAIL), 1, id="failure-ttl-under-a-second"),
        pytest.param(10, 0.0, lookup(MxClass.SERVFAIL), 0, id="failure-ttl-zero"),
        pytest.param(1, 5.0, lookup(), 1, id="one-entry"),
        pytest.param(0, 5.0, lookup(), 0, id="caching-off"),
    ],
)
def test_what_is_kept(max_entries: int, failure_ttl: float, answer: MxLookup, kept: int) -> None:
    clock = Clock()
    cache = LookupCache(max_entries, 0.0, 3600.0, failure_ttl, clock=clock)
    cache.put("a.example", answer)
    assert len(cache) == kept
    assert cache.get("a.example") is (answer if kept else None)


def test_lifetime_under_a_second_expires_on_time() -> None:
    clock = Clock()
    cache = LookupCache(10, 0.0, 3600.0, 5.0, clock=clock)
    answer = lookup(ttl=0.5)
    cache.put("a.example", answer)
    clock.now += 0.49
    assert cache.get("a.example") is answer
    clock.now += 0.01
    assert cache.get("a.example") is None
    assert len(cache) == 0


def test_least_recently_used_goes_first() -> None:
    clock = Clock()
    cache = LookupCache(2, 0.0, 3600.0, 5.0, clock=clock)
    first, second, third = lookup(), lookup(), lookup()
    cache.put("a.example", first)
    cache.put("b.example", second)
    assert cache.get("a.example") is first  # a is now the most recent
    cache.put("c.example", third)
    assert cache.get("b.example") is None
    assert cache.get("a.example") is first
    assert cache.get("c.example") is third
    assert len(cache) == 2


def test_putting_again_refreshes_the_entry_and_its_place() -> None:
    clock = Clock()
    cache = LookupCache(2, 0.0, 3600.0, 5.0, clock=clock)
    old, new, other, last = lookup(ttl=10), lookup(ttl=100), lookup(), lookup()
    cache.put("a.example", old)
    cache.put("b.example", other)
    cache.put("a.example", new)
    cache.put("c.example", last)
    assert cache.get("b.example") is None
    clock.now += 50
    assert cache.get("a.example") is new


@pytest.mark.parametrize(
    ("ttl", "mx_class", "lifetime"),
    [
        pytest.param(1.0, MxClass.MX, 5.0, id="raised-to-min"),
        pytest.param(5.0, MxClass.MX, 5.0, id="at-min"),
        pytest.param(7.0, MxClass.NULL_MX, 7.0, id="between"),
        pytest.param(100.0, MxClass.NXDOMAIN, 100.0, id="at-max"),
        pytest.param(900.0, MxClass.IMPLICIT, 100.0, id="cut-to-max"),
        pytest.param(900.0, MxClass.TIMEOUT, 3.0, id="failure"),
        pytest.param(900.0, MxClass.ERROR, 3.0, id="error"),
    ],
)
def test_lifetime(ttl: float, mx_class: MxClass, lifetime: float) -> None:
    cache = LookupCache(10, 5.0, 100.0, 3.0)
    assert cache.lifetime(lookup(mx_class, ttl)) == lifetime
