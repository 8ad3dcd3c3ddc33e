"""GET a page from the daemon's HTTP listener; an error status is still a page (the health
and status pages answer 503 while DNS is failing)."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    status: int
    content_type: str
    body: str


def fetch(url: str, accept: str = "") -> Page:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return Page(response.status, response.headers["Content-Type"], response.read().decode())
    except urllib.error.HTTPError as error:
        with error:
            return Page(error.code, error.headers["Content-Type"], error.read().decode())
