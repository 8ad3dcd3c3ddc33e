"""A small UDP+TCP DNS server on 127.0.0.1 that misbehaves on request, for fault tests.

In `forward` mode it relays queries to a real server (Knot) over the same transport; the
other modes answer SERVFAIL, REFUSED or NXDOMAIN without an SOA, answer garbage, answer too
late, never answer, or set the TC bit on every UDP answer so that the client must retry over TCP.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from knot import free_port

MODES = (
    "forward", "servfail", "refused", "malformed", "slow", "silent", "truncate", "bare-nxdomain",
)  # fmt: skip


class DnsStub:
    """Serves until close(); `mode` may be switched at any time."""

    def __init__(
        self, upstream_port: int, slow_seconds: float = 2.0, address: str = "127.0.0.1"
    ) -> None:
        """`address` may be any of 127.0.0.0/8: the resolver keeps one port per address, so
        several stubs in one server list need addresses of their own."""
        self.upstream_port = upstream_port
        self.address = address
        self.slow_seconds = slow_seconds
        self.mode = "forward"
        self.port = free_port()
        self.udp_queries = 0
        self.tcp_queries = 0
        self._count_lock = threading.Lock()
        self._closing = threading.Event()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind((address, self.port))
        self._udp.settimeout(0.1)
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind((address, self.port))
        self._tcp.listen(64)
        self._tcp.settimeout(0.1)
        self._threads = [
            threading.Thread(target=self._serve_udp, name="stub-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, name="stub-tcp", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def nameserver(self) -> str:
        return f"{self.address}:{self.port}"

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode

    def close(self) -> None:
        self._closing.set()
        for thread in self._threads:
            thread.join(5)
        self._udp.close()
        self._tcp.close()

    def _answer(self, wire: bytes, tcp: bool) -> bytes | None:
        """The reply to one query in the current mode, or None for no reply."""
        mode = self.mode
        if mode == "silent":
            return None
        if mode == "malformed":
            # The query's own ID, so the client accepts it as the answer, then garbage.
            return wire[:2] + b"\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00\xc0\xff\x07garbage"
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        rcodes = {
            "servfail": dns.rcode.SERVFAIL,
            "refused": dns.rcode.REFUSED,
            "bare-nxdomain": dns.rcode.NXDOMAIN,
        }
        if mode in rcodes:
            response = dns.message.make_response(query)
            response.set_rcode(rcodes[mode])
            return response.to_wire()
        if mode == "truncate" and not tcp:
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            return response.to_wire()
        if mode == "slow":
            self._closing.wait(self.slow_seconds)
        relay = dns.query.tcp if tcp else dns.query.udp
        try:
            return relay(query, "127.0.0.1", timeout=2.0, port=self.upstream_port).to_wire()
        except (OSError, dns.exception.DNSException):
            return None

    def _serve_udp(self) -> None:
        while not self._closing.is_set():
            try:
                wire, client = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._count_lock:
                self.udp_queries += 1
            # A thread per query, so that a slow answer does not hold up the next query.
            threading.Thread(target=self._reply_udp, args=(wire, client), daemon=True).start()

    def _reply_udp(self, wire: bytes, client: tuple[str, int]) -> None:
        reply = self._answer(wire, tcp=False)
        if reply is not None:
            with contextlib.suppress(OSError):
                self._udp.sendto(reply, client)

    def _serve_tcp(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(connection,), daemon=True).start()

    def _serve_connection(self, connection: socket.socket) -> None:
        connection.settimeout(5.0)
        with connection, contextlib.suppress(OSError):
            while not self._closing.is_set():
                header = _read_exactly(connection, 2)
                if header is None:
                    return
                wire = _read_exactly(connection, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                with self._count_lock:
                    self.tcp_queries += 1
                reply = self._answer(wire, tcp=True)
                if reply is None:
                    # Hold the connection open without answering, as a dead server would.
                    self._closing.wait(5.0)
                    return
                connection.sendall(struct.pack("!H", len(reply)) + reply)


def _read_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> float:
    """Poll `condition()` until true; returns the seconds it took (raises on timeout)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - started
