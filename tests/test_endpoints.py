"""Socket and nameserver specs: parsing, checking, and where a client connects to one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nullmx_milter.endpoints import (
    Nameserver,
    check_inherited_listener,
    check_listen,
    check_socket,
    connect_target,
    inherited_fd,
    parse_nameserver,
    split_host_port,
    unix_path,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("127.0.0.1", ("127.0.0.1", None), id="host"),
        pytest.param("127.0.0.1:1", ("127.0.0.1", 1), id="port-1"),
        pytest.param("localhost:65535", ("localhost", 65535), id="port-65535"),
        pytest.param("::1", ("::1", None), id="bare-v6"),
        pytest.param("[::1]", ("::1", None), id="bracketed-v6"),
        pytest.param("[::1]:53", ("::1", 53), id="bracketed-v6-port"),
        pytest.param("[2001:db8::1]:5353", ("2001:db8::1", 5353), id="v6-port"),
        # Only the syntax is read here; parse_nameserver checks the address.
        pytest.param("[a]:53", ("a", 53), id="one-character-in-brackets"),
    ],
)
def test_split_host_port(spec: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("[::1", "'[::1' is not [v6] or [v6]:port", id="unclosed"),
        pytest.param("[::1]x", "'[::1]x' is not [v6] or [v6]:port", id="junk-after"),
        pytest.param("[]:53", "'[]:53' is not [v6] or [v6]:port", id="empty-brackets"),
        pytest.param(":53", "':53' has no host", id="no-host"),
        pytest.param("h:", "port '' is not a number from 1 to 65535", id="empty-port"),
        pytest.param("h:0", "port '0' is not a number from 1 to 65535", id="port-0"),
        pytest.param("h:65536", "port '65536' is not a number from 1 to 65535", id="port-65536"),
        pytest.param("h:x1", "port 'x1' is not a number from 1 to 65535", id="not-a-number"),
        pytest.param("[::1]:0", "port '0' is not a number from 1 to 65535", id="v6-port-0"),
        pytest.param("[::1]]", "'[::1]]' is not [v6] or [v6]:port", id="second-bracket"),
    ],
)
def test_split_host_port_refuses(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        split_host_port(spec)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("192.0.2.1", Nameserver("192.0.2.1", 53), id="default-port"),
        pytest.param("[2001:db8::53]:5353", Nameserver("2001:db8::53", 5353), id="v6"),
    ],
)
def test_parse_nameserver(spec: str, expected: Nameserver) -> None:
    assert parse_nameserver(spec) == expected


def test_nameserver_text() -> None:
    assert str(Nameserver("192.0.2.1")) == "192.0.2.1:53"
    assert str(Nameserver("::1", 5353)) == "[::1]:5353"


@pytest.mark.parametrize(
    "spec",
    ["inet:1@127.0.0.1", "inet6:65535@[::1]", "unix:/run/a.sock", "local:/a", "fd:3"],
    ids=["inet", "inet6", "unix", "local", "fd"],
)
def test_socket_specs_that_pass(spec: str) -> None:
    assert check_socket(spec) == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("inet:0@h", "port 0 is out of range", id="port-0"),
        pytest.param("inet6:70000@h", "port 70000 is out of range", id="port-70000"),
        pytest.param("unix:a.sock", "a unix socket needs an absolute path", id="relative"),
        pytest.param("local:", "a unix socket needs an absolute path", id="empty-path"),
        pytest.param(
            "inet:25@",
            "'inet:25@' is not inet:PORT@HOST, inet6:PORT@HOST, unix:/path or fd:N",
            id="no-host",
        ),
        pytest.param(
            "fd:x", "'fd:x' is not inet:PORT@HOST, inet6:PORT@HOST, unix:/path or fd:N", id="fd-x"
        ),
    ],
)
def test_socket_specs_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_socket(spec)
    assert str(caught.value) == message


def test_check_listen() -> None:
    assert check_listen("") == ""
    assert check_listen("127.0.0.1:9466") == "127.0.0.1:9466"
    with pytest.raises(ValueError, match="has no port"):
        check_listen("::1")


def test_unix_path_and_inherited_fd() -> None:
    assert unix_path("unix:/a/b") == "/a/b"
    assert unix_path("local:/c") == "/c"
    assert unix_path("inet:1@h") is None
    assert inherited_fd("fd:3") == 3
    assert inherited_fd("fd:123456789") == 123456789
    assert inherited_fd("fd:") is None
    assert inherited_fd("inet:3@h") is None


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock
    sock.close()


def test_an_inherited_listener_is_checked(listener: socket.socket, tmp_path: Path) -> None:
    check_inherited_listener(listener.fileno())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as unbound:
        with pytest.raises(ValueError) as caught:
            check_inherited_listener(unbound.fileno())
        assert str(caught.value) == f"fd {unbound.fileno()} is not a listening stream socket"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
        datagram.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="is not a listening stream socket"):
            check_inherited_listener(datagram.fileno())
    path = tmp_path / "file"
    path.write_text("")
    with path.open() as file, pytest.raises(ValueError) as caught:
        fd = file.fileno()
        check_inherited_listener(fd)
    assert str(caught.value).startswith(f"fd {fd} is not an open socket: ")


@pytest.mark.parametrize(
    ("spec", "family", "address"),
    [
        pytest.param("unix:/run/x.sock", socket.AF_UNIX, "/run/x.sock", id="unix"),
        pytest.param("inet:25@192.0.2.1", socket.AF_INET, ("192.0.2.1", 25), id="inet"),
        pytest.param("inet:25@0.0.0.0", socket.AF_INET, ("127.0.0.1", 25), id="wildcard"),
        pytest.param("inet:25@*", socket.AF_INET, ("127.0.0.1", 25), id="star"),
        pytest.param("inet6:25@[::]", socket.AF_INET6, ("::1", 25), id="v6-wildcard"),
        pytest.param("inet6:25@[2001:db8::1]", socket.AF_INET6, ("2001:db8::1", 25), id="v6"),
        # A host name is passed on as written: only the IPv6 brackets come off.
        pytest.param("inet:25@MAILBOX", socket.AF_INET, ("MAILBOX", 25), id="name-kept"),
    ],
)
def test_connect_target(
    spec: str, family: socket.AddressFamily, address: str | tuple[str, int]
) -> None:
    assert connect_target(spec) == (family, address)


def test_connect_target_of_an_inherited_listener(listener: socket.socket, tmp_path: Path) -> None:
    port = int(listener.getsockname()[1])
    assert connect_target(f"fd:{listener.fileno()}") == (socket.AF_INET, ("127.0.0.1", port))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        unix.bind(str(tmp_path / "s.sock"))
        unix.listen(1)
        assert connect_target(f"fd:{unix.fileno()}") == (socket.AF_UNIX, str(tmp_path / "s.sock"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as wildcard:
        wildcard.bind(("0.0.0.0", 0))
        wildcard.listen(1)
        port = int(wildcard.getsockname()[1])
        assert connect_target(f"fd:{wildcard.fileno()}") == (socket.AF_INET, ("127.0.0.1", port))


def test_connect_target_refuses_what_is_not_a_socket_spec() -> None:
    with pytest.raises(ValueError) as caught:
        connect_target("tcp:25")
    assert str(caught.value) == "'tcp:25' is not a socket spec"
