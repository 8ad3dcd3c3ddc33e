"""Socket and nameserver specs: parse and check them, and say where to connect to one."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

_SOCKET_INET = re.compile(r"(inet|inet6):([0-9]{1,5})@(\S+)\Z")
_SOCKET_FD = re.compile(r"fd:([0-9]{1,9})\Z")
_UNIX_PREFIXES = ("unix:", "local:")
# Wildcard listening addresses, and the loopback address that reaches them.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "*": "127.0.0.1"}  # noqa: S104


@dataclass(frozen=True, slots=True)
class Nameserver:
    """A DNS server to send queries to: an IP address and a port."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def split_host_port(spec: str) -> tuple[str, int | None]:
    """'host', 'host:port', bare IPv6, or '[v6]' / '[v6]:port' -> (host, port or None)."""
    if spec.startswith("["):
        close = spec.find("]")
        # "[]" names no host (and "" would bind every interface).
        rest = spec[close + 1 :] if close > 1 else None
        if rest is None or (rest and not rest.startswith(":")):
            raise ValueError(f"{spec!r} is not [v6] or [v6]:port")
        return spec[1:close], _port(rest[1:]) if rest else None
    if spec.count(":") > 1:
        return spec, None
    host, colon, port = spec.partition(":")
    if not host:
        raise ValueError(f"{spec!r} has no host")
    return host, _port(port) if colon else None


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def parse_nameserver(spec: str) -> Nameserver:
    """A nameserver entry; dnspython needs IP addresses, not names."""
    host, port = split_host_port(spec)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    return Nameserver(host, 53 if port is None else port)


def check_socket(spec: str) -> str:
    """A libmilter socket spec: inet:PORT@HOST, inet6:PORT@HOST, unix:/absolute/path or fd:N
    (a listening socket inherited from systemd's socket activation)."""
    match = _SOCKET_INET.match(spec)
    if match:
        if not 1 <= int(match.group(2)) <= 65535:
            raise ValueError(f"port {match.group(2)} is out of range")
        return spec
    if _SOCKET_FD.match(spec):
        return spec
    path = unix_path(spec)
    if path is not None:
        if not path.startswith("/"):
            raise ValueError("a unix socket needs an absolute path")
        return spec
    raise ValueError(f"{spec!r} is not inet:PORT@HOST, inet6:PORT@HOST, unix:/path or fd:N")


def check_listen(spec: str) -> str:
    """'' (off), 'host:port' or '[v6]:port'."""
    if spec and split_host_port(spec)[1] is None:
        raise ValueError(f"{spec!r} has no port; write host:port, [v6]:port or '' (off)")
    return spec


def unix_path(spec: str) -> str | None:
    """The path of a 'unix:' or 'local:' spec, else None."""
    for prefix in _UNIX_PREFIXES:
        if spec.startswith(prefix):
            return spec[len(prefix) :]
    return None


def inherited_fd(spec: str) -> int | None:
    """N for an 'fd:N' spec, else None."""
    match = _SOCKET_FD.match(spec)
    return int(match.group(1)) if match else None


def check_inherited_listener(fd: int) -> None:
    """Raise ValueError unless `fd` is an open, listening stream socket."""
    try:
        listener = socket.socket(fileno=fd)
    except OSError as error:
        raise ValueError(f"fd {fd} is not an open socket: {error.strerror}") from None
    try:
        listening = listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        kind = listener.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    finally:
        listener.detach()
    if kind != socket.SOCK_STREAM or not listening:
        raise ValueError(f"fd {fd} is not a listening stream socket")


def connect_target(spec: str) -> tuple[socket.AddressFamily, str | tuple[str, int]]:
    """Where a client connects to reach a listener given by a libmilter socket spec
    (a wildcard address is reached through loopback; fd:N by the address it is bound to)."""
    path = unix_path(spec)
    if path is not None:
        return socket.AF_UNIX, path
    fd = inherited_fd(spec)
    if fd is not None:
        listener = socket.socket(fileno=fd)
        try:
            family, bound = listener.family, listener.getsockname()
        finally:
            listener.detach()
        if family == socket.AF_UNIX:
            return socket.AF_UNIX, str(bound)
        host, port = bound[0], int(bound[1])
        return family, (_WILDCARDS.get(host, host), port)
    match = _SOCKET_INET.match(spec)
    if match is None:
        raise ValueError(f"{spec!r} is not a socket spec")
    family = socket.AF_INET6 if match.group(1) == "inet6" else socket.AF_INET
    host = match.group(3).strip("[]")
    return family, (_WILDCARDS.get(host, host), int(match.group(2)))
