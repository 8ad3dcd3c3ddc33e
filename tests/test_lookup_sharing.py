"""Lookups with the same answer share one object (the cache holds 100k of them)."""

from __future__ import annotations

import pytest

from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.endpoints import parse_nameserver
from nullmx_milter.mx import MxClass

from knot import KnotServer

pytestmark = pytest.mark.integration


@pytest.fixture
def resolver(knot: KnotServer) -> MxResolver:
    return MxResolver([parse_nameserver(knot.nameserver)], timeout=1.0)


def test_same_answer_same_object(resolver: MxResolver) -> None:
    first = resolver.lookup("null.test")
    second = resolver.lookup("allowed.test")
    assert first.mx_class is MxClass.NULL_MX
    assert first == second
    assert first is second


def test_domains_of_one_provider_share_their_lookup(resolver: MxResolver) -> None:
    real = resolver.lookup("real.test")
    strasse = resolver.lookup("strasse.test")
    assert real is strasse
    assert real.exchanges == ((10, "mx.real.test."),)


def test_canonical_name_only_after_a_cname(resolver: MxResolver) -> None:
    assert resolver.lookup("null.test").canonical_name == ""
    assert resolver.lookup("cname-null.test").canonical_name == "null.test"
    assert resolver.lookup("to-null.example").canonical_name == "null.test"
