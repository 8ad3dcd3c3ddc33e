"""The HTTP listener for /metrics, /status and /healthz (loopback by default)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import prometheus_client
from prometheus_client import CollectorRegistry

from nullmx_milter.endpoints import split_host_port
from nullmx_milter.status_report import StatusReport

log = logging.getLogger(__name__)

StatusProvider = Callable[[], StatusReport]
# How often a serving loop looks for a stop request: stop() waits up to this long, and the
# daemon is to exit within a second of SIGTERM.
SHUTDOWN_POLL_SECONDS = 0.1
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


def wants_json(accept: str) -> bool:
    """Whether an Accept header asks for JSON before plain text (the default)."""
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media == JSON:
            return True
        if media in ("text/plain", "text/*", "*/*"):
            return False
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    status: StatusProvider | None = None


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(prometheus_client.MetricsHandler):
    """/metrics as prometheus_client serves it; /status (text, or JSON on request) and /healthz."""

    def do_GET(self) -> None:  # noqa: N802 (http.server names it)
        path = urlsplit(self.path).path
        if path in ("/", "/metrics"):
            super().do_GET()
            return
        provider = self.server.status if isinstance(self.server, _Server) else None
        if path not in ("/status", "/healthz") or provider is None:
            self._send(404, "not found: try /metrics, /status or /healthz\n")
            return
        try:
            report = provider()
        except Exception:
            # A bug in the report must not take the listener (or /metrics) down with it.
            log.exception("status report failed")
            self._send(500, "status report failed; see the milter's log\n")
            return
        code = 200 if report.healthy else 503
        if path == "/status" and wants_json(self.headers.get("Accept", "")):
            self._send(code, report.json(), JSON)
        elif path == "/status":
            self._send(code, report.text())
        else:
            self._send(code, "ok\n" if report.problem is None else f"{report.problem}\n")

    def _send(self, code: int, body: str, content_type: str = TEXT) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


class MetricsServer:
    """Serves the registry at /metrics (and the status report, if given) from a thread."""

    def __init__(
        self, listen: str, registry: CollectorRegistry, status: StatusProvider | None = None
    ) -> None:
        host, port = split_host_port(listen)
        handler = _Handler.factory(registry)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port or 0), handler)
        self._server.status = status
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(SHUTDOWN_POLL_SECONDS,),
            name="metrics-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
