"""The load clients' one loop: every peer keeps one request in flight, flat out or paced.

Requests are encoded before the clock starts and one thread drives all peers through epoll,
so the client spends microseconds per request: the server, not the client, is measured.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence

from load_result import LoadResult


class Peer:
    """One socket working through its pre-encoded requests, one in flight at a time."""

    __slots__ = ("buffer", "expected", "index", "next_index", "requests", "sent_at", "sock")

    def __init__(
        self,
        index: int,
        sock: socket.socket,
        requests: list[bytes],
        expected: list[str] | None = None,
    ) -> None:
        """`expected[i]`, when given, is the answer request i must get."""
        self.index = index
        self.sock = sock
        self.requests = requests
        self.expected = expected
        self.next_index = 0
        self.sent_at = 0.0
        self.buffer = b""

    @property
    def done(self) -> bool:
        return self.next_index >= len(self.requests)

    def send_next(self) -> None:
        self.sent_at = time.perf_counter()
        self.sock.sendall(self.requests[self.next_index])
        self.next_index += 1


def drive(
    peers: Sequence[Peer],
    read_answers: Callable[[Peer], list[str]],
    *,
    rate: float | None,
    timeout: float,
    what: str,
) -> LoadResult:
    """Run every peer's requests; `read_answers` reads a readable peer's complete answers.
    An answer other than the peer's `expected` one is listed in the result's `wrong`.

    Latency runs from writing a request to reading its answer. With `rate`, requests are
    offered at that many per second in all (each peer's next one is due at a fixed time,
    sent late if the previous answer came late) instead of as fast as answers come back.
    The sockets are left open (non-blocking) for the caller to close.
    """
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    wrong: list[str] = []
    waiting: list[tuple[float, int]] = []
    interval = len(peers) / rate if rate else 0.0
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + timeout
    active = 0
    for peer in peers:
        peer.sock.setblocking(False)
        selector.register(peer.sock, selectors.EVENT_READ, peer)
        if not peer.done:
            active += 1
            if rate:
                heapq.heappush(waiting, (started + peer.index / rate, peer.index))
            else:
                peer.send_next()
    while active:
        now = time.perf_counter()
        while waiting and waiting[0][0] <= now:
            peers[heapq.heappop(waiting)[1]].send_next()
        wait = deadline - now
        if waiting:
            wait = min(wait, waiting[0][0] - now)
        events = selector.select(max(0.0, wait))
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"{what} load run did not finish in {timeout}s")
        for key, _mask in events:
            peer = key.data
            for answer in read_answers(peer):
                answers[answer] += 1
                asked = peer.next_index - 1
                if peer.expected is not None and answer != peer.expected[asked]:
                    wrong.append(
                        f"{what} peer {peer.index} request {asked}: "
                        f"answered {answer!r}, expected {peer.expected[asked]!r}"
                    )
                latencies.append(now - peer.sent_at)
                if peer.done:
                    active -= 1
                elif rate:
                    due = started + peer.index / rate + peer.next_index * interval
                    heapq.heappush(waiting, (due, peer.index))
                else:
                    peer.send_next()
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_started
    selector.close()
    latencies.sort()
    return LoadResult(
        len(peers), len(latencies), seconds, client_cpu, latencies, answers, wrong=wrong
    )
