"""The HTTP listener for /metrics (loopback by default)."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer

import prometheus_client
from prometheus_client import CollectorRegistry

from nullmx_milter.config import split_host_port


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """Serves the registry at /metrics from a daemon thread until stopped."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        host, port = split_host_port(listen)
        handler = prometheus_client.MetricsHandler.factory(registry)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port or 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
