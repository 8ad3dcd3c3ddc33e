"""Ask a DNS server MX queries directly, at a given concurrency: its own answer time.

The same shape as the milter load client (one query in flight per client, epoll, packets
encoded before the clock starts), so milter latency and DNS latency compare side by side.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

from load_result import LoadResult
from paced_loop import Peer, drive

_MX = 15
_HEADER = struct.Struct(">HHHHHH")


def mx_query(name: str, query_id: int) -> bytes:
    """A recursion-desired MX query for `name` in wire format."""
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label)
    return _HEADER.pack(query_id, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", _MX, 1)


def run_dns_load(
    server: tuple[str, int],
    names: Sequence[Sequence[str]],
    timeout: float = 120.0,
    rate: float | None = None,
) -> LoadResult:
    """Query names[i] from client i, one query in flight per client; rcodes count as answers.

    `rate` paces the queries as run_load paces RCPTs.
    """
    clients = []
    for index, batch in enumerate(names):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(server)
        queries = [mx_query(name, (index * 7919 + n) & 0xFFFF) for n, name in enumerate(batch)]
        clients.append(Peer(index, sock, queries))
    try:
        return drive(
            clients, _dns_answers, rate=rate, timeout=timeout, what="DNS (lost a UDP answer?)"
        )
    finally:
        for client in clients:
            client.sock.close()


def _dns_answers(client: Peer) -> list[str]:
    """One datagram, one answer, counted by its rcode."""
    reply = client.sock.recv(4096)
    return [f"rcode{reply[3] & 0x0F}"]
