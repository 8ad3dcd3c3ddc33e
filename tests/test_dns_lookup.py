"""MxResolver against a real Knot server: every classification, TTLs, CNAMEs, failures."""

from __future__ import annotations

import time

import pytest

from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.endpoints import parse_nameserver
from nullmx_milter.mx import MxClass

from knot import BlackHole, KnotServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def resolver(knot: KnotServer) -> MxResolver:
    return MxResolver([parse_nameserver(knot.nameserver)], timeout=2.0)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param("null.test", MxClass.NULL_MX, id="null"),
        pytest.param("null10.test", MxClass.NULL_MX, id="null-pref-10"),
        pytest.param("nulltwice.test", MxClass.NULL_MX, id="null-twice"),
        pytest.param("mixed.test", MxClass.MIXED, id="mixed"),
        pytest.param("real.test", MxClass.MX, id="real"),
        pytest.param("implicit.test", MxClass.IMPLICIT, id="implicit"),
        pytest.param("cname-null.test", MxClass.NULL_MX, id="cname-null"),
        pytest.param("cname-real.test", MxClass.MX, id="cname-real"),
        pytest.param("to-null.example", MxClass.NULL_MX, id="cross-zone-cname"),
        pytest.param("to-implicit.example", MxClass.IMPLICIT, id="cross-zone-nodata"),
        pytest.param("xn--bcher-kva.test", MxClass.NULL_MX, id="idn"),
        pytest.param("nothere.test", MxClass.NXDOMAIN, id="nxdomain"),
        pytest.param("x.broken.test", MxClass.SERVFAIL, id="servfail"),
        pytest.param("outside.invalid", MxClass.ERROR, id="refused"),
    ],
)
def test_classification(resolver: MxResolver, domain: str, expected: MxClass) -> None:
    assert resolver.lookup(domain).mx_class is expected


def test_ttls_come_from_records_and_soa(resolver: MxResolver) -> None:
    assert resolver.lookup("null.test").ttl == 300
    assert resolver.lookup("nothere.test").ttl == 60
    assert resolver.lookup("implicit.test").ttl == 60
    assert resolver.lookup("x.broken.test").ttl == 0


def test_null_mx_detail_and_canonical_name(resolver: MxResolver) -> None:
    lookup = resolver.lookup("to-null.example")
    assert lookup.exchanges == ((0, "."),)
    assert lookup.canonical_name == "null.test"


def test_timeout_stays_within_budget(black_hole: BlackHole) -> None:
    resolver = MxResolver([parse_nameserver(black_hole.nameserver)], timeout=0.5)
    started = time.monotonic()
    lookup = resolver.lookup("null.test")
    elapsed = time.monotonic() - started
    assert lookup.mx_class is MxClass.TIMEOUT
    assert 0.4 < elapsed < 1.0
