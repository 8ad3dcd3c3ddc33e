"""Tell systemd how the service is doing (the sd_notify protocol); a no-op outside systemd."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

READY = "READY=1"
# Between RELOADING=1 and the next READY=1, systemd shows the unit as reloading.
RELOADING = "RELOADING=1"
STOPPING = "STOPPING=1"


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` to $NOTIFY_SOCKET; False when unset or unreachable (never raises)."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        # Abstract namespace: the leading '@' stands for a NUL byte.
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as error:
        log.warning("cannot notify systemd state=%s: %s", state, error)
        return False
    return True
