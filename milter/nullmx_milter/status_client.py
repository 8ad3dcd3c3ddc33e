"""Ask a running daemon for its 211 status report over its metrics listener."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from nullmx_milter.endpoints import split_host_port

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_UNREACHABLE = 3
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (mapped to loopback)


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """What to print and the exit status: 0 healthy, 1 DNS failing, 3 daemon unreachable."""

    exit_status: int
    text: str


def status_url(listen: str) -> str:
    """The /status URL of a daemon whose `metrics.listen` is `listen`."""
    if not listen:
        raise ValueError("metrics.listen is off in this config: the daemon serves no status")
    host, port = split_host_port(listen)
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/status"


def normalise_url(url: str) -> str:
    """A bare http://host:port/ means its /status; only http(s) URLs are fetched."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http:// URL")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/status")
    return urlunsplit(parts)


def fetch_status(url: str, timeout: float = 5.0, *, as_json: bool = False) -> StatusAnswer:
    """GET the report; /status answers 200 when healthy and 503 (same report) when not.

    `as_json` asks for the JSON form (Accept: application/json).
    """
    accept = "application/json" if as_json else "text/plain"
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 (http only)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http only)
            return StatusAnswer(EXIT_HEALTHY, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        with error:
            body = error.read().decode(errors="replace")
        if error.code == 503 and body.startswith("{" if as_json else "211"):
            return StatusAnswer(EXIT_UNHEALTHY, body)
        return _unreachable(url, f"HTTP {error.code} {error.reason}", as_json)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return _unreachable(url, str(reason), as_json)


def _unreachable(url: str, why: str, as_json: bool) -> StatusAnswer:
    problem = f"cannot reach the daemon at {url}: {why}"
    if as_json:
        return StatusAnswer(
            EXIT_UNREACHABLE, json.dumps({"status": "unreachable", "problem": problem}) + "\n"
        )
    return StatusAnswer(EXIT_UNREACHABLE, f"421 nullmx-milter status: {problem}\n")
