"""Start the daemon as systemd starts it for a socket unit: a held listener passed as fd 3.

The caller keeps the listening socket open across restarts, as systemd's socket unit does,
so connections made between two processes wait in its backlog instead of being refused.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from daemon_process import CONSOLE_SCRIPT

# What systemd's socket unit would give the process: the first passed fd is 3.
LISTEN_FD = 3
BACKLOG = 128


def held_listener(unix_path: Path | None = None, group: str | None = None) -> socket.socket:
    """A listening socket: TCP on a free port of 127.0.0.1, or the unix socket `unix_path`
    made as the shipped socket unit makes it (mode 0660, group `group`)."""
    if unix_path is None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
    else:
        unix_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(unix_path))
        unix_path.chmod(0o660)
        if group is not None:
            shutil.chown(unix_path, group=group)
    listener.listen(BACKLOG)
    return listener


def start_on_fd(
    workdir: Path,
    config: str,
    listener: socket.socket,
    command_prefix: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Write `config` (its milter.socket "fd:3") and start the daemon as systemd starts a
    socket-activated service: the listener as fd 3, LISTEN_FDS=1, LISTEN_PID its pid.
    stderr is appended to workdir/milter.log. `command_prefix` runs it inside something
    (`ip netns exec NS`, which keeps inherited fds)."""
    config_path = workdir / "nullmx-milter.toml"
    config_path.write_text(config)
    listen_fd = listener.fileno()

    def as_systemd_would() -> None:
        os.dup2(listen_fd, LISTEN_FD)
        # In the child only, before the exec that inherits this environment.
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())

    with (workdir / "milter.log").open("ab") as log:
        return subprocess.Popen(
            [*command_prefix, CONSOLE_SCRIPT, "run", "--allow-root", "--config", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            # Kept open through the exec: the listener, and the copy of it made as fd 3.
            pass_fds=(listen_fd, LISTEN_FD),
            preexec_fn=as_systemd_would,  # noqa: PLW1509 - a dup2 and two variables
        )
