"""Start the installed `nullmx-milter run` console script with a config, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from knot import free_port

# The console script installed beside the Python running the tests (the venv's), never
# another nullmx-milter that happens to be on PATH.
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "nullmx-milter")


def toml_config(
    nameservers: list[str],
    milter_port: int | str,
    metrics_port: int,
    extra: str = "",
    dns_options: str = "timeout = 1.0\n",
) -> str:
    """A config for tests: loopback ports and the test DNS servers; `extra` adds tables.

    `milter_port` is a TCP port on 127.0.0.1 or a whole libmilter socket spec.
    `extra` may hold [policy], [cache] or [log] tables; [milter], [dns] and [metrics] are set
    here, `dns_options` being the [dns] keys other than nameservers.
    """
    servers = ", ".join(f'"{server}"' for server in nameservers)
    milter_socket = milter_port if isinstance(milter_port, str) else f"inet:{milter_port}@127.0.0.1"
    return (
        f'[milter]\nsocket = "{milter_socket}"\n'
        f"[dns]\nnameservers = [{servers}]\n{dns_options}"
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n' + extra
    )


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Poll until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_for_unix_socket(path: Path, timeout: float = 15.0) -> None:
    """Poll until something accepts connections on the unix socket `path`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(str(path))
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {path} after {timeout}s")


class MilterDaemon:
    """The real daemon in a subprocess, on a milter socket and a metrics port.

    The milter socket is TCP on a free port, or the unix socket `unix_socket`.
    `command_prefix` runs it inside something (`ip netns exec NS`); readiness is then polled
    from the caller's namespace, so start it from inside the same one.
    """

    def __init__(
        self,
        workdir: Path,
        nameservers: list[str],
        extra_config: str = "",
        unix_socket: Path | None = None,
        command_prefix: Sequence[str] = (),
        dns_options: str = "timeout = 1.0\n",
    ) -> None:
        self.workdir = workdir
        self.unix_socket = unix_socket
        self.milter_port = free_port(socket.SOCK_STREAM)
        self.metrics_port = free_port(socket.SOCK_STREAM)
        self.command_prefix = list(command_prefix)
        self.config_path = workdir / "nullmx-milter.toml"
        self.config_path.write_text(
            toml_config(
                nameservers, self.libmilter_socket, self.metrics_port, extra_config, dns_options
            )
        )
        self.log_path = workdir / "milter.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def libmilter_socket(self) -> str:
        """The socket as the milter's config writes it."""
        if self.unix_socket is not None:
            return f"unix:{self.unix_socket}"
        return f"inet:{self.milter_port}@127.0.0.1"

    def start(self, env: Mapping[str, str] | None = None, wait: bool = True) -> MilterDaemon:
        """Start it (with extra environment `env`); unless `wait` is off, poll until it serves."""
        self.process = subprocess.Popen(
            [
                *self.command_prefix,
                CONSOLE_SCRIPT,
                "run",
                "--allow-root",
                "--config",
                str(self.config_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"),
            env={**os.environ, **(env or {})},
        )
        if not wait:
            return self
        try:
            if self.unix_socket is not None:
                wait_for_unix_socket(self.unix_socket)
            else:
                wait_for_port(self.milter_port)
            wait_for_port(self.metrics_port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"milter did not start: {self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def terminate(self) -> subprocess.Popen[bytes] | None:
        """Send SIGTERM without waiting (libmilter takes seconds to exit); returns the process."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        process = self.terminate()
        if process is None:
            return None
        reap([process])
        return process.returncode


def stop_daemons(daemons: list[MilterDaemon]) -> None:
    """Stop several daemons at once (each takes seconds to leave libmilter's loop)."""
    threads = [threading.Thread(target=daemon.stop) for daemon in daemons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def reap(processes: Sequence[subprocess.Popen[bytes] | None], timeout: float = 30.0) -> None:
    """Wait for processes already told to stop; kill any still there after `timeout`."""
    for process in processes:
        if process is None:
            continue
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
