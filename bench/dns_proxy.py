"""A UDP DNS proxy that counts queries by name and can hold answers back a while.

It sits in front of the real server so the coalescing benchmark counts, at the DNS side,
how many queries the milter really sent; the delay keeps a lookup in flight long enough
for every concurrent RCPT to arrive while it is.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

from knot import free_port


def query_name(packet: bytes) -> str:
    """The question name of a DNS message, lower-case, without the trailing dot."""
    labels = []
    index = 12
    while index < len(packet) and packet[index]:
        length = packet[index]
        labels.append(packet[index + 1 : index + 1 + length].decode("ascii", "replace"))
        index += 1 + length
    return ".".join(labels).lower()


class CountingDnsProxy:
    """Forwards each UDP query to `upstream` and its answer back after `delay` seconds."""

    def __init__(self, upstream: tuple[str, int], delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.port = free_port()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-proxy", daemon=True)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> CountingDnsProxy:
        self._thread.start()
        return self

    def count(self, name: str) -> int:
        with self._lock:
            return self.counts[name]

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                query, client = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.counts[query_name(query)] += 1
            threading.Thread(target=self._forward, args=(query, client), daemon=True).start()

    def _forward(self, query: bytes, client: tuple[str, int]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(2.0)
            upstream.sendto(query, self.upstream)
            try:
                answer = upstream.recv(65535)
            except TimeoutError:
                return
        time.sleep(self.delay)
        self._sock.sendto(answer, client)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._sock.close()
