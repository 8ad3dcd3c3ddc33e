"""Read a systemd unit file and start its ExecStart= the way systemd would (user, umask)."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "systemd" / "nullmx-milter.service"
SOCKET = REPO / "systemd" / "nullmx-milter.socket"


@dataclass(frozen=True)
class Unit:
    """A unit's settings as (section, key, value) in file order; keys may repeat."""

    settings: tuple[tuple[str, str, str], ...]

    @classmethod
    def parse(cls, path: Path) -> Unit:
        section = ""
        settings = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            header = re.fullmatch(r"\[(\w+)\]", line)
            if header:
                section = header.group(1)
                continue
            key, equals, value = line.partition("=")
            assert equals, f"not a setting: {raw!r}"
            settings.append((section, key.strip(), value.strip()))
        return cls(tuple(settings))

    def values(self, key: str, section: str = "Service") -> list[str]:
        return [value for sec, name, value in self.settings if (sec, name) == (section, key)]

    def value(self, key: str, section: str = "Service") -> str:
        values = self.values(key, section)
        assert len(values) == 1, f"{section}.{key}: {values}"
        return values[0]

    def exec_start(self) -> list[str]:
        """ExecStart= as argv; prefixes (-, @, +, !) would change its meaning, so none allowed."""
        argv = shlex.split(self.value("ExecStart"))
        assert argv[0].startswith("/"), "ExecStart= needs an absolute path"
        return argv

    def seconds(self, key: str) -> float:
        match = re.fullmatch(r"([0-9.]+)(s|min)?", self.value(key))
        assert match, f"{key}={self.value(key)}"
        return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def start_as(
    argv: Sequence[str],
    uid: int,
    gid: int,
    umask: str,
    env: Mapping[str, str],
    stderr: Path,
    listening: socket.socket | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv as uid:gid with no supplementary groups and the given umask, as User=,
    Group= and UMask= do (setpriv from util-linux; root only). With `listening`, hand it over
    as a socket unit does: as fd 3, with LISTEN_FDS=1 and LISTEN_PID set to the process."""
    prologue = f"umask {shlex.quote(umask)}"
    if listening is not None:
        prologue += " && LISTEN_PID=$$ && export LISTEN_PID"
    command = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--",
        "sh",
        "-c",
        f'{prologue} && exec "$@"',
        "sh",
        *argv,
    ]
    extra: dict[str, str] = {}
    if listening is not None:
        extra = {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "nullmx-milter.socket"}
    source = listening.fileno() if listening is not None else -1

    def listening_as_fd_3() -> None:
        if source >= 0:
            os.dup2(source, 3)

    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("wb"),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env, **extra},
        # dup2() leaves the new fd 3 inheritable; every other fd Python opened is not (PEP 446),
        # so nothing else leaks into the child.
        close_fds=listening is None,
        preexec_fn=listening_as_fd_3 if listening is not None else None,  # noqa: PLW1509
    )


def passwd_entry(root: Path, user: str) -> tuple[int, int]:
    """(uid, gid) of `user` in root/etc/passwd."""
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise KeyError(user)


def group_id(root: Path, group: str) -> int:
    """The gid of `group` in root/etc/group."""
    for line in (root / "etc" / "group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return int(fields[2])
    raise KeyError(group)


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET: a unix datagram socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.address = address

    def receive(self, timeout: float = 15.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def close(self) -> None:
        self.sock.close()
