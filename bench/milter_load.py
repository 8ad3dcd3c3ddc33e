"""A lean MTA-side milter load client: many connections, many RCPTs, per-RCPT latency.

Every packet is encoded before the clock starts and one thread drives all connections
through epoll, so the client spends a few microseconds per RCPT (reported as
`client_cpu_per_rcpt`): the milter, not the client, is what the figures measure.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable, Sequence

from load_result import LoadResult, percentile
from paced_loop import Peer, drive

__all__ = ["LoadResult", "open_session", "packet", "percentile", "rcpt_packets", "run_load"]

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
    expect: Callable[[str], str] | None = None,
) -> LoadResult:
    """Send recipients[i] over connection i, one RCPT in flight per connection.

    Answers are "c" (continue) or a reply's code ("556", "451"), or the reply command
    letter otherwise; with `expect` (recipient -> the answer it must get), every answer is
    checked and the wrong ones are listed in the result.

    Latency is from writing a RCPT to reading its reply, as an MTA would see it. With
    `rate`, RCPTs are offered at that many per second in all (each connection's next one
    is due at a fixed time, sent late if the previous answer came late) instead of as
    fast as answers come back.
    """
    sessions = [
        Peer(
            index,
            open_session(address),
            [rcpt_packets(f"<{rcpt}>") for rcpt in batch],
            None if expect is None else [expect(rcpt) for rcpt in batch],
        )
        for index, batch in enumerate(recipients)
    ]
    try:
        return drive(sessions, _milter_answers, rate=rate, timeout=timeout, what="milter")
    finally:
        for session in sessions:
            session.sock.setblocking(True)
            with contextlib.suppress(OSError):
                session.sock.sendall(packet(b"Q"))
            session.sock.close()


def _milter_answers(session: Peer) -> list[str]:
    """The reply commands complete in what the milter sent (one per RCPT)."""
    chunk = session.sock.recv(65536)
    if not chunk:
        raise ConnectionError("milter closed the connection mid-run")
    buffer = session.buffer + chunk
    replies = []
    while len(buffer) >= 4:
        (length,) = _HEADER.unpack_from(buffer)
        if len(buffer) < 4 + length:
            break
        command = buffer[4:5]
        # A reply code packet carries "556 5.1.10 ..." (or "556-..."): name it by its code.
        replies.append(
            buffer[5:8].decode("ascii", "replace") if command == b"y" else chr(buffer[4])
        )
        buffer = buffer[4 + length :]
    session.buffer = buffer
    return replies
