"""Ask a DNS server MX queries directly, at a given concurrency: its own answer time.

The same shape as the milter load client (one query in flight per client, epoll, packets
encoded before the clock starts), so milter latency and DNS latency compare side by side.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import struct
import time
from collections import Counter
from collections.abc import Sequence

from milter_load import LoadResult

_MX = 15
_HEADER = struct.Struct(">HHHHHH")


def mx_query(name: str, query_id: int) -> bytes:
    """A recursion-desired MX query for `name` in wire format."""
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label)
    return _HEADER.pack(query_id, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", _MX, 1)


class _Client:
    """One UDP socket working through its pre-encoded queries."""

    __slots__ = ("index", "next_index", "queries", "sent_at", "sock")

    def __init__(self, index: int, sock: socket.socket, queries: list[bytes]) -> None:
        self.index = index
        self.sock = sock
        self.queries = queries
        self.next_index = 0
        self.sent_at = 0.0

    def send_next(self) -> bool:
        if self.next_index >= len(self.queries):
            return False
        self.sent_at = time.perf_counter()
        self.sock.send(self.queries[self.next_index])
        self.next_index += 1
        return True


def run_dns_load(
    server: tuple[str, int],
    names: Sequence[Sequence[str]],
    timeout: float = 120.0,
    rate: float | None = None,
) -> LoadResult:
    """Query names[i] from client i, one query in flight per client; rcodes count as answers.

    `rate` paces the queries as run_load paces RCPTs.
    """
    selector = selectors.DefaultSelector()
    clients = []
    for index, batch in enumerate(names):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(server)
        sock.setblocking(False)
        queries = [mx_query(name, (index * 7919 + n) & 0xFFFF) for n, name in enumerate(batch)]
        client = _Client(index, sock, queries)
        selector.register(sock, selectors.EVENT_READ, client)
        clients.append(client)
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    waiting: list[tuple[float, int]] = []
    interval = len(clients) / rate if rate else 0.0
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + timeout
    active = 0
    for client in clients:
        if client.queries:
            active += 1
            if rate:
                heapq.heappush(waiting, (started + client.index / rate, client.index))
            else:
                client.send_next()
    while active:
        now = time.perf_counter()
        while waiting and waiting[0][0] <= now:
            clients[heapq.heappop(waiting)[1]].send_next()
        wait = deadline - now
        if waiting:
            wait = min(wait, waiting[0][0] - now)
        events = selector.select(max(0.0, wait))
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"DNS load run did not finish in {timeout}s (lost a UDP answer?)")
        for key, _mask in events:
            client = key.data
            reply = client.sock.recv(4096)
            answers[f"rcode{reply[3] & 0x0F}"] += 1
            latencies.append(now - client.sent_at)
            if client.next_index >= len(client.queries):
                active -= 1
            elif rate:
                due = started + client.index / rate + client.next_index * interval
                heapq.heappush(waiting, (due, client.index))
            else:
                client.send_next()
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_started
    for client in clients:
        selector.unregister(client.sock)
        client.sock.close()
    selector.close()
    latencies.sort()
    return LoadResult(len(clients), len(latencies), seconds, client_cpu, latencies, answers)
