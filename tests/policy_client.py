"""A Postfix-side client for the policy service: one request, one `action=` answer."""

from __future__ import annotations

import socket


def connect_unix(path: str) -> socket.socket:
    """A connection to the policy service's unix socket."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(path)
    return client


def exchange(client: socket.socket, payload: bytes) -> bytes:
    """Send one request and read the answer up to its empty line (or EOF)."""
    client.sendall(payload)
    answer = b""
    while not answer.endswith(b"\n\n"):
        chunk = client.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer
