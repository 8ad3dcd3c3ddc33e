"""The policy service on what Postfix (or something else) may send it: limits, cuts, odd lines."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nullmx_milter.policy_service import MAX_ATTRIBUTES, PolicyResponder, PolicyServer

from fakes import fake_runtimes
from knot import free_port
from policy_client import connect_unix, exchange

REJECT = b"action=556 5.1.10 "
DUNNO = b"action=DUNNO\n\n"
NULL_MX_REQUEST = b"protocol_state=RCPT\nrecipient=u@null.example\n\n"


def make_server(spec: str) -> PolicyServer:
    runtimes, metrics = fake_runtimes(idle_timeout=5.0)
    server = PolicyServer(spec, PolicyResponder(runtimes, metrics), metrics)
    server.start()
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PolicyServer]:
    policy_server = make_server(f"unix:{tmp_path / 'policy.sock'}")
    yield policy_server
    policy_server.stop()


def connect(server: PolicyServer) -> socket.socket:
    return connect_unix(str(server.server_address)[len("unix:") :])


def requests(server: PolicyServer, result: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "nullmx_policy_requests_total", {"result": result}
    )
    assert value is not None, result
    return value


def closed(client: socket.socket) -> bool:
    try:
        return client.recv(10) == b""
    except ConnectionResetError:
        return True


def until_closed(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := client.recv(4096):
        received += chunk
    return received


def padding(count: int) -> bytes:
    return b"".join(b"x%d=y\n" % index for index in range(count))


@pytest.mark.parametrize(
    ("extra", "answer"),
    [
        pytest.param(MAX_ATTRIBUTES - 2, REJECT, id="at-the-limit"),
        pytest.param(MAX_ATTRIBUTES - 1, DUNNO, id="one-over"),
    ],
)
def test_attribute_limit(server: PolicyServer, extra: int, answer: bytes) -> None:
    with connect(server) as client:
        # protocol_state and recipient come first, so a request over the limit would still
        # be a null-MX recipient if the limit were not applied.
        request = b"protocol_state=RCPT\nrecipient=u@null.example\n" + padding(extra) + b"\n"
        assert exchange(client, request).startswith(answer)
        # The stream is still in sync: the connection goes on.
        assert exchange(client, NULL_MX_REQUEST).startswith(REJECT)
    assert requests(server, "malformed") == (1 if answer == DUNNO else 0)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(b"protocol_state=RCPT\nrecipient=u@null.example\n", id="before-empty-line"),
        pytest.param(b"protocol_state=RCPT\nrecipient=u@null.exa", id="mid-line"),
    ],
)
def test_request_cut_short_gets_dunno_and_close(server: PolicyServer, cut: bytes) -> None:
    with connect(server) as client:
        client.sendall(cut)
        client.shutdown(socket.SHUT_WR)
        # One DUNNO, then the server closes the connection.
        assert until_closed(client) == DUNNO
    assert requests(server, "malformed") == 1
    assert requests(server, "ok") == 0


def test_connection_closed_between_requests_gets_no_answer(server: PolicyServer) -> None:
    with connect(server) as client:
        assert exchange(client, NULL_MX_REQUEST).startswith(REJECT)
        client.shutdown(socket.SHUT_WR)
        assert closed(client)
    assert requests(server, "malformed") == 0
    assert requests(server, "ok") == 1


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"=value\n", id="empty-name"),
        pytest.param(b"no equals sign\n", id="no-equals"),
    ],
)
def test_lines_that_are_not_name_value_get_dunno(server: PolicyServer, line: bytes) -> None:
    with connect(server) as client:
        assert exchange(client, line + NULL_MX_REQUEST) == DUNNO
        assert exchange(client, NULL_MX_REQUEST).startswith(REJECT)
    assert requests(server, "malformed") == 1


def test_empty_value_is_an_attribute(server: PolicyServer) -> None:
    with connect(server) as client:
        assert exchange(client, b"sender=\n" + NULL_MX_REQUEST).startswith(REJECT)
    assert requests(server, "malformed") == 0


def test_crlf_line_ends_are_read_as_lf(server: PolicyServer) -> None:
    with connect(server) as client:
        answer = exchange(client, b"protocol_state=RCPT\r\nrecipient=u@null.example\r\n\r\n")
        assert answer.startswith(REJECT)
        # Still in step: the empty CRLF line ended the first request.
        assert exchange(client, NULL_MX_REQUEST).startswith(REJECT)


def test_inet6_listener() -> None:
    port = free_port(socket.SOCK_STREAM)
    server = make_server(f"inet6:{port}@::1")
    try:
        with socket.create_connection(("::1", port), timeout=5) as client:
            assert client.family == socket.AF_INET6
            assert exchange(client, NULL_MX_REQUEST).startswith(REJECT)
    finally:
        server.stop()


def test_inet_listener() -> None:
    port = free_port(socket.SOCK_STREAM)
    server = make_server(f"inet:{port}@127.0.0.1")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert exchange(client, NULL_MX_REQUEST).startswith(REJECT)
    finally:
        server.stop()
