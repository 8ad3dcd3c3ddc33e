"""A lean MTA-side milter load client: many connections, many RCPTs, per-RCPT latency.

Every packet is encoded before the clock starts and one thread drives all connections
through epoll, so the client spends a few microseconds per RCPT (reported as
`client_cpu_per_rcpt`): the milter, not the client, is what the figures measure.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import struct
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

_VERSION = 6
_ALL_ACTIONS = 0x1FF
# Every protocol step and no-reply bit an MTA may offer (the milter picks what it wants).
_ALL_PROTOCOL = 0x1FFFFF
_SMFIP_NR_RCPT = 0x8000
_HEADER = struct.Struct(">I")


def packet(command: bytes, payload: bytes = b"") -> bytes:
    """One milter packet: length, command byte, payload."""
    return _HEADER.pack(len(payload) + 1) + command + payload


def rcpt_packets(recipient: str, queue_id: str = "4XyZ12") -> bytes:
    """What Postfix sends per RCPT: the RCPT-stage macros, then RCPT itself (one write)."""
    macros = b"R" + b"".join(
        name + b"\0" + value.encode() + b"\0"
        for name, value in ((b"i", queue_id), (b"{rcpt_addr}", recipient.strip("<>")))
    )
    return packet(b"D", macros) + packet(b"R", recipient.encode() + b"\0")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (which must be sorted)."""
    if not values:
        return float("nan")
    rank = max(0, min(len(values) - 1, round(fraction * len(values) + 0.5) - 1))
    return values[rank]


@dataclass
class LoadResult:
    """What one load run measured."""

    connections: int
    rcpts: int
    seconds: float
    client_cpu: float
    latencies: list[float] = field(repr=False)
    answers: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.rcpts / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def client_cpu_per_rcpt(self) -> float:
        return self.client_cpu / self.rcpts if self.rcpts else 0.0


class _Session:
    """One milter connection working through its list of pre-encoded RCPT packets."""

    __slots__ = ("buffer", "index", "next_index", "packets", "sent_at", "sock")

    def __init__(self, index: int, sock: socket.socket, packets: list[bytes]) -> None:
        self.index = index
        self.sock = sock
        self.packets = packets
        self.next_index = 0
        self.sent_at = 0.0
        self.buffer = b""

    def send_next(self) -> bool:
        if self.next_index >= len(self.packets):
            return False
        self.sent_at = time.perf_counter()
        self.sock.sendall(self.packets[self.next_index])
        self.next_index += 1
        return True


def _read_packet(sock: socket.socket) -> tuple[bytes, bytes]:
    """Blocking read of one packet: (command, payload)."""
    header = _recv_exactly(sock, 4)
    (length,) = _HEADER.unpack(header)
    body = _recv_exactly(sock, length)
    return body[:1], body[1:]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("milter closed the connection")
        data += chunk
    return data


def open_session(address: str | tuple[str, int]) -> socket.socket:
    """Connect (TCP (host, port) or a unix socket path) and negotiate; returns the socket."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
    else:
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(packet(b"O", struct.pack(">III", _VERSION, _ALL_ACTIONS, _ALL_PROTOCOL)))
    command, payload = _read_packet(sock)
    if command != b"O":
        raise ConnectionError(f"bad option negotiation reply {command!r}")
    _version, _actions, protocol = struct.unpack(">III", payload[:12])
    if protocol & _SMFIP_NR_RCPT:
        raise ConnectionError("the milter asked for no RCPT replies; nothing to time")
    return sock


def run_load(
    address: str | tuple[str, int],
    recipients: Sequence[Sequence[str]],
    timeout: float = 120.0,
    rate: float | None = None,
) -> LoadResult:
    """Send recipients[i] over connection i, one RCPT in flight per connection.

    Latency is from writing a RCPT to reading its reply, as an MTA would see it. With
    `rate`, RCPTs are offered at that many per second in all (each connection's next one
    is due at a fixed time, sent late if the previous answer came late) instead of as
    fast as answers come back.
    """
    sessions = [
        _Session(index, open_session(address), [rcpt_packets(f"<{rcpt}>") for rcpt in batch])
        for index, batch in enumerate(recipients)
    ]
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    waiting: list[tuple[float, int]] = []
    interval = len(sessions) / rate if rate else 0.0
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + timeout
    active = 0
    for index, session in enumerate(sessions):
        session.sock.setblocking(False)
        selector.register(session.sock, selectors.EVENT_READ, session)
        if session.packets:
            active += 1
            if rate:
                heapq.heappush(waiting, (started + index / rate, index))
            else:
                session.send_next()
    while active:
        now = time.perf_counter()
        while waiting and waiting[0][0] <= now:
            sessions[heapq.heappop(waiting)[1]].send_next()
        wait = deadline - now
        if waiting:
            wait = min(wait, waiting[0][0] - now)
        events = selector.select(max(0.0, wait))
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"milter load run did not finish in {timeout}s")
        for key, _mask in events:
            session = key.data
            chunk = session.sock.recv(65536)
            if not chunk:
                raise ConnectionError("milter closed the connection mid-run")
            buffer = session.buffer + chunk
            while len(buffer) >= 4:
                (length,) = _HEADER.unpack_from(buffer)
                if len(buffer) < 4 + length:
                    break
                answers[chr(buffer[4])] += 1
                buffer = buffer[4 + length :]
                latencies.append(now - session.sent_at)
                if session.next_index >= len(session.packets):
                    active -= 1
                elif rate:
                    due = started + session.index / rate + session.next_index * interval
                    heapq.heappush(waiting, (due, session.index))
                else:
                    session.send_next()
            session.buffer = buffer
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_started
    for session in sessions:
        selector.unregister(session.sock)
        session.sock.setblocking(True)
        session.sock.sendall(packet(b"Q"))
        session.sock.close()
    selector.close()
    latencies.sort()
    return LoadResult(len(sessions), len(latencies), seconds, client_cpu, latencies, answers)
