"""A private network namespace with its own resolv.conf and hosts, for real MTAs in tests."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_CLONE_NEWNET = 0x40000000
_NETNS_RUN = Path("/var/run/netns")
_NETNS_ETC = Path("/etc/netns")
HOSTNAME = socket.gethostname().split(".")[0]
# Sendmail sleeps 60 s at start-up unless the hostname resolves to a qualified name.
FQDN = f"{HOSTNAME}.nullmx.test"


def _setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind `fd`."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextlib.contextmanager
def entered_namespace(path: Path) -> Iterator[None]:
    """Run the body with this thread inside the network namespace at `path` (a bind mount
    under /var/run/netns, or /proc/PID/ns/net of a container's process). Sockets opened and
    processes started in the body stay in it."""
    with path.open("rb") as inside, Path("/proc/thread-self/ns/net").open("rb") as outside:
        _setns(inside.fileno())
        try:
            yield
        finally:
            _setns(outside.fileno())


class Namespace(Protocol):
    """Where a harness runs its servers: a command prefix, and a way in for this thread."""

    @property
    def prefix(self) -> list[str]: ...

    def entered(self) -> contextlib.AbstractContextManager[None]: ...


class ProcessNamespace:
    """The network namespace of a running process, e.g. a container's first process."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/ns/net")

    @property
    def prefix(self) -> list[str]:
        return ["nsenter", f"--net={self.path}"]

    def entered(self) -> contextlib.AbstractContextManager[None]:
        return entered_namespace(self.path)


class NetNamespace:
    """`ip netns add NAME` with lo up; /etc/netns/NAME gives it resolv.conf -> 127.0.0.1.

    Commands run inside through `prefix` (`ip netns exec NAME`, which also bind-mounts the
    namespace's resolv.conf and hosts). The test process itself enters it for a moment with
    `entered()`, to poll ports and open SMTP and HTTP connections.
    """

    def __init__(self, label: str) -> None:
        self.name = f"nullmx-{label}-{os.getpid()}"
        self.etc = _NETNS_ETC / self.name
        self.created = False

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def create(self) -> NetNamespace:
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:2\n")
        (self.etc / "hosts").write_text(
            f"127.0.0.1 {FQDN} {HOSTNAME} localhost\n::1 localhost ip6-localhost\n"
        )
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.created = True
        subprocess.run([*self.prefix, "ip", "link", "set", "lo", "up"], check=True)
        return self

    def run(
        self, command: list[str], stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside and return its output (text)."""
        return subprocess.run(
            [*self.prefix, *command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def entered(self) -> contextlib.AbstractContextManager[None]:
        """Run the body with this thread inside the namespace (sockets opened stay there)."""
        return entered_namespace(_NETNS_RUN / self.name)

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "delete", self.name], check=False)
            self.created = False
        shutil.rmtree(self.etc, ignore_errors=True)

    def __enter__(self) -> NetNamespace:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()
