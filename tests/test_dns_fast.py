"""The lean UDP MX path gives exactly what dnspython gives, or stands aside."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from nullmx_milter.dns_fast import FastMxQuery, parse_answer
from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.endpoints import Nameserver
from nullmx_milter.mx import MxClass

from knot import KnotServer

FAST_ZONE = """$ORIGIN fastpath.
$TTL 300
@           SOA ns.fastpath. hostmaster.fastpath. 1 3600 600 86400 60
@           NS  ns.fastpath.
ns          A   127.0.0.1
upper       MX  10 MX.Upper.Fastpath.
several     MX  30 c.example.
several     MX  10 a.example.
several     MX  20 b.example.
shortttl    MX  10 a.example.
shortttl    MX  20 b.example.
null        MX  0 .
nodata      A   127.0.0.1
cname       CNAME several.fastpath.
odd         MX  10 with\\032space.example.
"""

PLAIN = [
    "null.test", "null10.test", "nulltwice.test", "mixed.test", "real.test",
    "xn--bcher-kva.test", "strasse.test", "upper.fastpath", "several.fastpath",
    "null.fastpath",
]  # fmt: skip
# NXDOMAIN, NODATA, CNAME, SERVFAIL, a name that needs escaping: dnspython's job.
NOT_PLAIN = [
    "nothere.test", "implicit.test", "cname-null.test", "x.broken.test", "to-null.example",
    "nodata.fastpath", "cname.fastpath", "odd.fastpath",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    knot = KnotServer(tmp_path_factory.mktemp("knot-fast"))
    knot.start(extra_zones={"fastpath.": FAST_ZONE})
    yield knot
    knot.stop()


def resolvers(server: KnotServer) -> tuple[MxResolver, MxResolver]:
    nameservers = [Nameserver("127.0.0.1", server.port)]
    return MxResolver(nameservers, 1.0), MxResolver(nameservers, 1.0, fast_path=False)


@pytest.mark.integration
@pytest.mark.parametrize("domain", PLAIN + NOT_PLAIN)
def test_same_lookup_either_way(server: KnotServer, domain: str) -> None:
    fast, slow = resolvers(server)
    assert fast.lookup(domain) == slow.lookup(domain)


@pytest.mark.integration
@pytest.mark.parametrize("domain", PLAIN)
def test_plain_answers_take_the_lean_path(server: KnotServer, domain: str) -> None:
    assert FastMxQuery("127.0.0.1", server.port).query(domain, 1.0) is not None


@pytest.mark.integration
@pytest.mark.parametrize("domain", NOT_PLAIN)
def test_everything_else_is_left_to_dnspython(server: KnotServer, domain: str) -> None:
    assert FastMxQuery("127.0.0.1", server.port).query(domain, 1.0) is None


@pytest.mark.integration
@pytest.mark.parametrize("domain", ["upper.fastpath", "several.fastpath", "shortttl.fastpath"])
def test_exchanges_order_and_ttl_as_dnspython_reports_them(server: KnotServer, domain: str) -> None:
    _fast, slow = resolvers(server)
    expected = slow.lookup(domain)
    answer = FastMxQuery("127.0.0.1", server.port).query(domain, 1.0)
    assert answer == (expected.exchanges, int(expected.ttl), False)


class SilentServer:
    """A UDP socket on 127.0.0.1 that counts the queries it gets and never answers."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.port = int(self.socket.getsockname()[1])

    def queries(self) -> list[bytes]:
        received = []
        while True:
            try:
                received.append(self.socket.recv(4096))
            except BlockingIOError:
                return received


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.socket.close()


def test_silence_is_left_to_dnspython(silent: SilentServer) -> None:
    started = time.monotonic()
    assert FastMxQuery("127.0.0.1", silent.port).query("null.test", 0.2) is None
    elapsed = time.monotonic() - started
    # The query went out, and the lean path waited for its answer (not less, not much more).
    assert [query[12:] for query in silent.queries()] == [QUESTION + OPT_RECORD]
    assert 0.19 <= elapsed < 2.0, elapsed


def test_resolver_still_times_out_within_budget(silent: SilentServer) -> None:
    resolver = MxResolver([Nameserver("127.0.0.1", silent.port)], timeout=0.4)
    started = time.monotonic()
    assert resolver.lookup("null.test").mx_class is MxClass.TIMEOUT
    elapsed = time.monotonic() - started
    # The whole budget is spent (0.4 s), and not far beyond it (a generous margin for a
    # shared 2-core host).
    assert 0.39 <= elapsed < 2.0, elapsed
    assert len(silent.queries()) >= 2  # the lean try, then dnspython's own


QUESTION = b"\x04null\x04test\x00" + struct.pack(">HH", 15, 1)
# EDNS0 OPT: root owner, type 41, payload 1232, no extended flags, no options.
OPT_RECORD = b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)


def response(flags: int = 0x8180, answers: bytes = b"", count: int = 1, query_id: int = 7) -> bytes:
    return struct.pack(">HHHHHH", query_id, flags, 1, count, 0, 0) + QUESTION + answers


def mx_record(rdata: bytes, owner: bytes = b"\xc0\x0c", ttl: int = 60) -> bytes:
    return owner + struct.pack(">HHIH", 15, 1, ttl, len(rdata)) + rdata


NULL_MX_RDATA = b"\x00\x00\x00"


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(response(query_id=8, answers=mx_record(NULL_MX_RDATA)), id="other-id"),
        pytest.param(response(flags=0x8380, answers=mx_record(NULL_MX_RDATA)), id="truncated"),
        pytest.param(response(flags=0x8183, count=0), id="nxdomain"),
        pytest.param(response(flags=0x8182, count=0), id="servfail"),
        pytest.param(response(flags=0x0100, answers=mx_record(NULL_MX_RDATA)), id="not-a-reply"),
        pytest.param(response(answers=mx_record(b"\x00\x00\xc0\x29")), id="pointer-to-itself"),
        pytest.param(response(answers=mx_record(b"\x00\x00\x09abc")), id="name-past-the-end"),
        pytest.param(response(answers=mx_record(NULL_MX_RDATA)[:-2]), id="short-rdata"),
        pytest.param(
            response(answers=mx_record(NULL_MX_RDATA, owner=b"\x05other\x00")), id="other-owner"
        ),
        pytest.param(response(answers=mx_record(b"\x00\x00\x00\x00")), id="rdata-longer"),
    ],
)
def test_malformed_or_unusual_answers_stand_aside(packet: bytes) -> None:
    assert parse_answer(packet, 7, QUESTION, "null.test") is None


def test_a_well_formed_null_mx_parses() -> None:
    packet = response(answers=mx_record(NULL_MX_RDATA, ttl=60))
    assert parse_answer(packet, 7, QUESTION, "null.test") == (((0, "."),), 60, False)


def rrsig_record(ttl: int = 60) -> bytes:
    # Covers MX, ECDSA P-256, 2 labels; the signature bytes are never looked at.
    rdata = struct.pack(">HBBIIIH", 15, 13, 2, 60, 0, 0, 1) + b"\x00" + b"\x01" * 64
    return b"\xc0\x0c" + struct.pack(">HHIH", 46, 1, ttl, len(rdata)) + rdata


@pytest.mark.parametrize(
    ("flags", "authenticated"),
    [pytest.param(0x81A0, True, id="ad-set"), pytest.param(0x8180, False, id="ad-clear")],
)
def test_the_ad_bit_is_reported_and_rrsigs_are_skipped(flags: int, authenticated: bool) -> None:
    records = mx_record(NULL_MX_RDATA, ttl=60) + rrsig_record(ttl=30)
    packet = response(flags=flags, answers=records, count=2)
    # The RRSIG's own TTL does not count, as dnspython reports the MX set's.
    assert parse_answer(packet, 7, QUESTION, "null.test") == (((0, "."),), 60, authenticated)


def test_a_signature_without_mx_records_stands_aside() -> None:
    assert (
        parse_answer(response(flags=0x81A0, answers=rrsig_record()), 7, QUESTION, "null.test")
        is None
    )


def test_names_that_cannot_be_asked_stand_aside_without_a_query(silent: SilentServer) -> None:
    fast = FastMxQuery("127.0.0.1", silent.port)
    started = time.monotonic()
    assert fast.query("a..b", 5.0) is None
    assert fast.query("bücher.test", 5.0) is None
    assert fast.query("x" * 64 + ".test", 5.0) is None
    # Nothing was sent, so nothing was waited for.
    assert time.monotonic() - started < 1.0
    assert silent.queries() == []
