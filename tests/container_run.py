"""podman for the container tier: build the images (scripts/build-image), run and stop them.

Every podman command reads scripts/containers.conf (runc, ulimits the host grants), as
`make image` does. Containers run with `--network=none`: their network namespace holds
only a loopback interface, which the tests enter (`netns.entered_namespace`) to start Knot
and to talk to the milter.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = REPO / "scripts" / "containers.conf"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def _run_podman(args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_env(),
        check=False,
    )


def podman(*args: str, timeout: float = 600.0, check: bool = True) -> str:
    """Run `podman ARGS` and return its stdout; a failure raises with podman's stderr."""
    result = _run_podman(args, timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {result.returncode}: {result.stderr}")
    return result.stdout


def podman_status(*args: str, timeout: float = 600.0) -> tuple[int, str]:
    """Run `podman ARGS`: its exit status and everything it printed."""
    result = _run_podman(args, timeout)
    return result.returncode, result.stdout + result.stderr


def build_image(kind: str = "milter") -> str:
    """scripts/build-image KIND (cached when its inputs did not change): the image name.

    It runs in a process group of its own: a test stopped meanwhile (a timeout) stops the
    whole build, debootstrap included, and the scripts remove their temporary roots.
    """
    process = subprocess.Popen(
        [str(REPO / "scripts" / "build-image"), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=podman_env(),
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=1500)
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"build-image {kind} failed: {stderr}")
    return stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Container:
    """A container started by `podman run --detach`, by its name."""

    name: str

    def inspect(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name).strip()

    @property
    def pid(self) -> int:
        """Its first process, as the host sees it."""
        pid = int(self.inspect("{{.State.Pid}}"))
        if pid == 0:
            raise RuntimeError(f"container {self.name} is not running: {self.logs()}")
        return pid

    @property
    def netns(self) -> Path:
        return Path(f"/proc/{self.pid}/ns/net")

    def logs(self) -> str:
        """What it wrote to stdout and stderr (the daemon logs to stderr)."""
        result = subprocess.run(
            ["podman", "logs", self.name],
            capture_output=True,
            text=True,
            timeout=60,
            env=podman_env(),
            check=False,
        )
        return result.stdout + result.stderr

    def kill(self, signal_name: str) -> None:
        podman("kill", "--signal", signal_name, self.name)

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


def run_container(name: str, image: str, *options: str, command: tuple[str, ...] = ()) -> Container:
    """`podman run --detach --network=none OPTIONS IMAGE COMMAND`; an old one of that name goes.

    The image's periodic healthcheck needs systemd timers, which this host has not: it is
    switched off here and run on demand (`podman healthcheck run`).
    """
    podman("rm", "--force", "--time", "0", name, check=False)
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network=none",
        "--health-interval=disable",
        *options,
        image,
        *command,
    )
    return Container(name)


def wait_for_exit(pid: int, timeout: float) -> float:
    """Seconds until process `pid` exits (a pidfd turns readable), or TimeoutError."""
    started = time.monotonic()
    fd = os.pidfd_open(pid)
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not readable:
        raise TimeoutError(f"process {pid} still runs after {timeout}s")
    return time.monotonic() - started
