"""The lean MX path, packet by packet: what it sends, and which answers it reads itself."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from nullmx_milter.dns_fast import FastMxQuery, parse_answer

QUESTION = b"\x04null\x04test\x00" + struct.pack(">HH", 15, 1)
OWNER = b"\xc0\x0c"  # a pointer to the question's name


def header(flags: int = 0x8180, answers: int = 1, query_id: int = 7, questions: int = 1) -> bytes:
    return struct.pack(">HHHHHH", query_id, flags, questions, answers, 0, 0)


def record(
    rdata: bytes, owner: bytes = OWNER, ttl: int = 60, rtype: int = 15, rclass: int = 1
) -> bytes:
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def mx(preference: int, *labels: bytes) -> bytes:
    return struct.pack(">H", preference) + b"".join(bytes([len(x)]) + x for x in labels) + b"\0"


def answer(*records: bytes, flags: int = 0x8180, question: bytes = QUESTION) -> bytes:
    return header(flags, len(records)) + question + b"".join(records)


def parse(packet: bytes, domain: str = "null.test") -> object:
    return parse_answer(packet, 7, QUESTION, domain)


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        pytest.param(answer(record(mx(0))), (((0, "."),), 60, False), id="null-mx"),
        pytest.param(
            answer(record(mx(10, b"a", b"example"), ttl=300), record(mx(20, b"B", b"x"), ttl=40)),
            (((10, "a.example."), (20, "B.x.")), 40, False),
            id="two-records-lowest-ttl",
        ),
        pytest.param(
            answer(record(mx(20, b"b", b"x"), ttl=40), record(mx(10, b"a", b"x"), ttl=300)),
            (((20, "b.x."), (10, "a.x.")), 40, False),
            id="order-kept-ttl-either-way",
        ),
        pytest.param(
            answer(record(mx(10, b"a", b"x")), record(mx(10, b"A", b"X"))),
            (((10, "a.x."),), 60, False),
            id="duplicate-names-differ-in-case",
        ),
        pytest.param(
            answer(record(mx(10, b"a", b"x")), record(mx(20, b"a", b"x"))),
            (((10, "a.x."), (20, "a.x.")), 60, False),
            id="same-name-two-preferences",
        ),
        pytest.param(
            answer(record(mx(0)), flags=0x81A0), (((0, "."),), 60, True), id="authentic-data"
        ),
        pytest.param(
            answer(record(mx(0), owner=b"\x04NULL\x04Test\x00")),
            (((0, "."),), 60, False),
            id="owner-in-other-case",
        ),
        pytest.param(
            answer(
                record(b"\x00" * 20, rtype=46, ttl=5), record(mx(0), ttl=70), record(b"x", rtype=46)
            ),
            (((0, "."),), 70, False),
            id="rrsig-skipped-ttl-and-all",
        ),
        pytest.param(
            # "mail" then a pointer to "test." inside the question (offset 17).
            answer(record(b"\x00\x0a\x04mail\xc0\x11")),
            (((10, "mail.test."),), 60, False),
            id="exchange-compressed",
        ),
        pytest.param(
            answer(record(mx(10, b"a_b-c", b"x"))),
            (((10, "a_b-c.x."),), 60, False),
            id="underscore-and-hyphen",
        ),
        pytest.param(
            answer(record(mx(10, b"a", b"x"), ttl=0), record(mx(20, b"b", b"x"), ttl=60)),
            (((10, "a.x."), (20, "b.x.")), 0, False),
            id="ttl-zero-first",
        ),
        pytest.param(
            answer(record(mx(7, b"x" * 63))), (((7, "x" * 63 + "."),), 60, False), id="63"
        ),
    ],
)
def test_plain_answers(packet: bytes, expected: object) -> None:
    assert parse(packet) == expected


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(answer(), id="no-records"),
        pytest.param(answer(record(b"\x00" * 20, rtype=46)), id="only-rrsig"),
        pytest.param(answer(record(mx(0), rtype=5)), id="cname"),
        pytest.param(answer(record(mx(0), rclass=3)), id="class-chaos"),
        pytest.param(answer(record(mx(0)), flags=0x8185), id="rcode-refused"),
        pytest.param(answer(record(mx(0)), flags=0x8980), id="opcode-status"),
        pytest.param(answer(record(mx(0)), flags=0x0180), id="no-qr"),
        pytest.param(answer(record(mx(0)), flags=0x8380), id="truncated"),
        pytest.param(header(answers=1, questions=2) + QUESTION + QUESTION + record(mx(0)), id="2q"),
        pytest.param(header(answers=1, questions=0) + record(mx(0)), id="no-question"),
        pytest.param(header(answers=1, questions=2) + QUESTION + record(mx(0)), id="2q-said"),
        pytest.param(
            answer(record(mx(0)), question=b"\x04null\x04tesu\x00" + QUESTION[-4:]),
            id="other-question",
        ),
        pytest.param(answer(record(mx(0), owner=b"\x04null\x00")), id="other-owner"),
        pytest.param(answer(record(mx(0), owner=b"\x01x\xc0\x0c")), id="owner-below"),
        pytest.param(answer(record(mx(10, b"a b"))), id="label-needs-escaping"),
        pytest.param(answer(record(mx(10, b"a.b"))), id="dot-in-label"),
        pytest.param(answer(record(mx(10, b"\xc3\xbc"))), id="non-ascii-label"),
        pytest.param(answer(record(mx(10, b"a") + b"\0")), id="rdata-longer-than-name"),
        pytest.param(answer(record(b"\x00\x0a\x01a")), id="name-runs-past-rdata"),
        pytest.param(answer(record(b"\x00\x0a\x40" + b"a" * 64 + b"\x00")), id="label-type-0x40"),
        pytest.param(answer(record(b"\x00\x0a\x41a\x00")), id="label-type-0x41"),
        pytest.param(answer(record(mx(0), owner=b"\x04n\xffll\x04test\x00")), id="owner-not-ascii"),
        pytest.param(answer(record(b"\x00\x0a\x80a\x00")), id="label-type-0x80"),
        pytest.param(answer(record(b"\x00\x0a\xc0\x29")), id="pointer-loop"),
        pytest.param(answer(record(mx(0)))[:-1], id="cut-in-rdata"),
        pytest.param(answer(record(mx(0)))[:-5], id="cut-in-rr-header"),
        pytest.param(answer(record(mx(0)))[:11], id="cut-in-header"),
        pytest.param(header(answers=2) + QUESTION + record(mx(0)), id="fewer-records-than-said"),
        pytest.param(answer(record(mx(0)), record(mx(0), rtype=16)), id="then-a-txt"),
    ],
)
def test_everything_else_stands_aside(packet: bytes) -> None:
    assert parse(packet) is None


def test_query_id_must_match() -> None:
    assert parse_answer(answer(record(mx(0))), 8, QUESTION, "null.test") is None


def pointer_chain(count: int) -> bytes:
    """A null MX whose exchange is `count` compression pointers, each to the next, then the
    root label; the chain sits after the record, so the RDATA is just the first pointer."""
    start = len(header()) + len(QUESTION) + len(OWNER) + 10 + 4
    chain = b"".join(
        struct.pack(">H", 0xC000 | (start + 2 * (index + 1))) for index in range(count - 1)
    )
    rdata = b"\x00\x00" + struct.pack(">H", 0xC000 | start)
    return answer(record(rdata)) + chain + b"\x00"


def test_a_pointer_past_offset_255_uses_both_of_its_octets() -> None:
    first = record(mx(10, b"a" * 63, b"b" * 63, b"c" * 63))
    second = record(mx(20, b"e" * 60, b"f" * 10))
    # The "f" label of the second exchange: header, question, first record, owner and RR
    # header of the second, its preference and the "e" label.
    label_f = len(header()) + len(QUESTION) + len(first) + len(OWNER) + 10 + 2 + 61
    assert label_f > 0xFF
    third = record(struct.pack(">HH", 30, 0xC000 | label_f))
    long_name = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "."
    assert parse(answer(first, second, third)) == (
        ((10, long_name), (20, "e" * 60 + "." + "f" * 10 + "."), (30, "f" * 10 + ".")),
        60,
        False,
    )


def test_up_to_32_pointers_are_followed_for_one_name() -> None:
    assert parse(pointer_chain(1)) == (((0, "."),), 60, False)
    assert parse(pointer_chain(32)) == (((0, "."),), 60, False)
    assert parse(pointer_chain(33)) is None
    assert parse(pointer_chain(200)) is None


class OneShotServer:
    """A UDP server on 127.0.0.1 that answers the first query with `respond(query)`."""

    def __init__(self, respond: Callable[[bytes], bytes | None]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = int(self.sock.getsockname()[1])
        self.queries: list[bytes] = []
        self._respond = respond
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            query, client = self.sock.recvfrom(4096)
        except OSError:
            return
        if self._closing.is_set():
            return
        self.queries.append(query)
        reply = self._respond(query)
        if reply is not None:
            self.sock.sendto(reply, client)

    def close(self) -> None:
        """Stop at once: a server still waiting for its query is woken by an empty datagram
        it does not count (tests that expect no query would otherwise wait out the 5 s)."""
        self._closing.set()
        if self._thread.is_alive():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
                waker.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(5)
        self.sock.close()


def echo_null_mx(query: bytes) -> bytes:
    """A null MX answer to whatever was asked (the query's id and question)."""
    question_end = query.index(b"\0", 12) + 5
    return (
        query[:2]
        + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
        + query[12:question_end]
        + (record(mx(0)))
    )


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[bytes], bytes | None]], OneShotServer]]:
    servers: list[OneShotServer] = []

    def start(respond: Callable[[bytes], bytes | None]) -> OneShotServer:
        server = OneShotServer(respond)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("dnssec", "flags", "edns_flags"),
    [pytest.param(False, 0x0100, 0, id="plain"), pytest.param(True, 0x0120, 0x8000, id="dnssec")],
)
def test_the_query_on_the_wire(
    serve: Callable[[Callable[[bytes], bytes | None]], OneShotServer],
    dnssec: bool,
    flags: int,
    edns_flags: int,
) -> None:
    server = serve(echo_null_mx)
    result = FastMxQuery("127.0.0.1", server.port, dnssec=dnssec).query("null.test", 2.0)
    assert result == (((0, "."),), 60, False)
    (query,) = server.queries
    _id, sent_flags, questions, answers, authority, additional = struct.unpack(">6H", query[:12])
    assert (sent_flags, questions, answers, authority, additional) == (flags, 1, 0, 0, 1)
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, edns_flags, 0)
    assert query[12:] == QUESTION + opt


def test_queries_get_random_ids(
    serve: Callable[[Callable[[bytes], bytes | None]], OneShotServer],
) -> None:
    ids = set()
    for _ in range(4):
        server = serve(echo_null_mx)
        assert FastMxQuery("127.0.0.1", server.port).query("null.test", 2.0) is not None
        ids.add(server.queries[0][:2])
    assert len(ids) > 1


def test_an_answer_with_another_id_stands_aside(
    serve: Callable[[Callable[[bytes], bytes | None]], OneShotServer],
) -> None:
    def wrong_id(query: bytes) -> bytes:
        reply = echo_null_mx(query)
        return bytes([reply[0] ^ 0xFF]) + reply[1:]

    server = serve(wrong_id)
    assert FastMxQuery("127.0.0.1", server.port).query("null.test", 2.0) is None


@pytest.mark.parametrize(
    "domain",
    [
        pytest.param("a..b", id="empty-label"),
        pytest.param(".a", id="leading-dot"),
        pytest.param("bücher.test", id="u-label"),
        pytest.param("x" * 64 + ".test", id="label-64"),
        pytest.param(".".join(["a" * 63] * 4), id="name-over-255"),
        pytest.param(".".join(["a" * 63] * 3 + ["b" * 62]), id="qname-255-octets"),
    ],
)
def test_names_that_cannot_be_asked_send_nothing(
    serve: Callable[[Callable[[bytes], bytes | None]], OneShotServer], domain: str
) -> None:
    server = serve(echo_null_mx)
    assert FastMxQuery("127.0.0.1", server.port).query(domain, 0.2) is None
    assert server.queries == []


def test_one_letter_labels_are_asked(
    serve: Callable[[Callable[[bytes], bytes | None]], OneShotServer],
) -> None:
    server = serve(echo_null_mx)
    assert FastMxQuery("127.0.0.1", server.port).query("a.b", 2.0) == (((0, "."),), 60, False)


def test_the_longest_name_that_fits_is_asked(
    serve: Callable[[Callable[[bytes], bytes | None]], OneShotServer],
) -> None:
    # 3 x 63 + 61 octets of labels + 4 length octets = 253 characters, 254 octets of QNAME
    # without the root label.
    domain = ".".join(["a" * 63] * 3 + ["b" * 61])
    server = serve(echo_null_mx)
    assert FastMxQuery("127.0.0.1", server.port).query(domain, 2.0) is not None


def test_ipv6_server(serve: Callable[[Callable[[bytes], bytes | None]], OneShotServer]) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::1", 0))
    sock.settimeout(5)
    port = int(sock.getsockname()[1])

    def answer_once() -> None:
        query, client = sock.recvfrom(4096)
        sock.sendto(echo_null_mx(query), client)

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        assert FastMxQuery("::1", port).query("null.test", 2.0) == (((0, "."),), 60, False)
    finally:
        thread.join(5)
        sock.close()
