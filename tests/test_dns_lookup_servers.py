"""MxResolver across several servers and long CNAME chains: failover, the per-server share of
the budget, mixed failures, NXDOMAIN without SOA, the CNAME hop limit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.endpoints import Nameserver
from nullmx_milter.mx import MxClass

from dns_stub import DnsStub
from knot import KnotServer

pytestmark = pytest.mark.integration

# Slack for a shared 2-core host on top of a lookup budget (seen needed at a load of 10).
SLACK = 2.0
HOP_LIMIT = 8  # lookups per name, CNAME hops included (dns_lookup._MAX_CNAME_HOPS)


def chain_zones(length: int, prefix: str) -> dict[str, str]:
    """A CNAME chain alternating between two zones (Knot, being authoritative only, does
    not follow a CNAME into another zone: every hop is a lookup), ending at a null MX."""
    zones: dict[str, list[str]] = {"hopa.": [], "hopb.": []}
    for index in range(length):
        zone = "hopa." if index % 2 == 0 else "hopb."
        target_zone = "hopb." if index % 2 == 0 else "hopa."
        zones[zone].append(f"{prefix}{index} CNAME {prefix}{index + 1}.{target_zone}")
    last_zone = "hopa." if length % 2 == 0 else "hopb."
    zones[last_zone].append(f"{prefix}{length} MX 0 .")
    return {name: "\n".join(records) for name, records in zones.items()}


def zone_text(origin: str, records: list[str]) -> str:
    return "\n".join(
        [
            f"$ORIGIN {origin}",
            "$TTL 300",
            f"@ SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60",
            f"@ NS ns.{origin}",
            "ns A 127.0.0.1",
            *records,
            "",
        ]
    )


def hop_zones() -> dict[str, str]:
    records: dict[str, list[str]] = {"hopa.": [], "hopb.": []}
    for length, prefix in ((HOP_LIMIT - 1, "fits"), (HOP_LIMIT, "over")):
        for zone, text in chain_zones(length, prefix).items():
            records[zone].append(text)
    # A loop across the two zones, and one inside a zone.
    records["hopa."] += ["loop CNAME loop.hopb.", "self CNAME self"]
    records["hopb."] += ["loop CNAME loop.hopa."]
    return {origin: zone_text(origin, lines) for origin, lines in records.items()}


@pytest.fixture(scope="module")
def hops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    knot = KnotServer(tmp_path_factory.mktemp("knot-hops"))
    knot.start(extra_zones=hop_zones())
    yield knot
    knot.stop()


@pytest.fixture
def stubs(knot: KnotServer) -> Iterator[list[DnsStub]]:
    """Three misbehaving servers in front of Knot, each set to its mode by the test (each on
    its own loopback address: the resolver keeps one port per address)."""
    made = [DnsStub(knot.port, address=f"127.0.0.{index}") for index in (2, 3, 4)]
    yield made
    for stub in made:
        stub.close()


def server(stub: DnsStub) -> Nameserver:
    return Nameserver(stub.address, stub.port)


def timed(resolver: MxResolver, domain: str) -> tuple[MxClass, float]:
    started = time.monotonic()
    lookup = resolver.lookup(domain)
    return lookup.mx_class, time.monotonic() - started


@pytest.mark.parametrize("dead", [1, 2])
def test_silent_servers_fail_over_to_the_next_within_the_budget(
    knot: KnotServer, stubs: list[DnsStub], dead: int
) -> None:
    for stub in stubs[:dead]:
        stub.set_mode("silent")
    timeout = 1.5 * (dead + 1)
    servers = [server(stub) for stub in stubs[:dead]] + [Nameserver("127.0.0.1", knot.port)]
    mx_class, seconds = timed(MxResolver(servers, timeout), "null.test")
    # Each server gets timeout / len(servers): the silent ones cannot eat the whole budget.
    assert mx_class is MxClass.NULL_MX
    assert seconds < timeout, seconds
    assert all(stub.udp_queries >= 1 for stub in stubs[:dead])


def test_every_server_silent_is_a_timeout_within_the_budget(stubs: list[DnsStub]) -> None:
    for stub in stubs:
        stub.set_mode("silent")
    mx_class, seconds = timed(MxResolver([server(stub) for stub in stubs], 0.9), "null.test")
    assert mx_class is MxClass.TIMEOUT
    assert 0.85 <= seconds < 0.9 + SLACK, seconds
    # Every server had its turn.
    assert all(stub.udp_queries >= 1 for stub in stubs)


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        pytest.param(("servfail", "servfail"), MxClass.SERVFAIL, id="all-servfail"),
        pytest.param(("servfail", "refused"), MxClass.ERROR, id="servfail-and-refused"),
        pytest.param(("refused", "refused"), MxClass.ERROR, id="all-refused"),
        pytest.param(("servfail", "forward"), MxClass.NULL_MX, id="servfail-then-answer"),
        pytest.param(("refused", "forward"), MxClass.NULL_MX, id="refused-then-answer"),
        pytest.param(("malformed", "forward"), MxClass.NULL_MX, id="garbage-then-answer"),
    ],
)
def test_mixed_failures_across_servers(
    stubs: list[DnsStub], modes: tuple[str, str], expected: MxClass
) -> None:
    for stub, mode in zip(stubs, modes, strict=False):
        stub.set_mode(mode)
    resolver = MxResolver([server(stub) for stub in stubs[: len(modes)]], 2.0)
    lookup = resolver.lookup("null.test")
    assert lookup.mx_class is expected, lookup
    if expected is MxClass.ERROR:
        # The detail names what each server did.
        assert str(stubs[0].port) in lookup.detail
        assert str(stubs[1].port) in lookup.detail


def test_nxdomain_without_soa_is_not_cached(stubs: list[DnsStub]) -> None:
    stubs[0].set_mode("bare-nxdomain")
    lookup = MxResolver([server(stubs[0])], 2.0).lookup("null.test")
    assert lookup.mx_class is MxClass.NXDOMAIN
    assert lookup.ttl == 0


def test_nxdomain_with_soa_takes_the_soa_minimum(knot: KnotServer) -> None:
    lookup = MxResolver([Nameserver("127.0.0.1", knot.port)], 2.0).lookup("nothere.test")
    assert (lookup.mx_class, lookup.ttl) == (MxClass.NXDOMAIN, 60)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param("fits0.hopa", MxClass.NULL_MX, id=f"{HOP_LIMIT - 1}-hops"),
        pytest.param("over0.hopa", MxClass.ERROR, id=f"{HOP_LIMIT}-hops"),
        pytest.param("loop.hopa", MxClass.ERROR, id="loop-across-zones"),
        pytest.param("self.hopa", MxClass.ERROR, id="loop-in-a-zone"),
    ],
)
def test_cname_chains_and_loops(hops: KnotServer, domain: str, expected: MxClass) -> None:
    resolver = MxResolver([Nameserver("127.0.0.1", hops.port)], 2.0)
    started = time.monotonic()
    lookup = resolver.lookup(domain)
    assert lookup.mx_class is expected, lookup
    # A loop ends at the hop limit, not at the budget.
    assert time.monotonic() - started < 1.0
