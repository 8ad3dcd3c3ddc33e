"""Stop time: from SIGTERM until the milter process has exited, for each kind of socket.

The real daemon (installed console script) on a unix socket, on TCP, and on a listening
socket inherited as fd 3 (systemd socket activation); beside it the do-nothing pymilter
(null_pymilter.py, `Milter.runmilter`), which stops as libmilter alone does: when its
listener's 5 s poll ends. Each process is started afresh and answers one RCPT (so that
libmilter's workers have run) before it gets SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daemon_process import MilterDaemon, toml_config, wait_for_port
from knot import KnotServer, free_port
from milter_client import MilterClient
from socket_activation import held_listener, start_on_fd

HERE = Path(__file__).resolve().parent
UNIX, INET, FD = "unix", "inet", "fd:3"
SOCKETS = (UNIX, INET, FD)
BASELINE = "do-nothing pymilter, inet"
# Generous: the one lookup before each stop must not time out on a busy host.
DNS_OPTIONS = "timeout = 5.0\n"


@dataclass(frozen=True)
class StopSizes:
    """How many stops for each of our socket kinds, and for the baseline."""

    stops: int = 10
    # Each takes about 5 s: a few show it.
    baseline_stops: int = 3


STOP_SMOKE = StopSizes(stops=1, baseline_stops=0)


@dataclass
class StopTimes:
    """Seconds from SIGTERM to exit, per case (SOCKETS, then BASELINE), and for our daemon
    the seconds until its log said "stopped" (the rest is the interpreter's own exit)."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    logged: dict[str, list[float]] = field(default_factory=dict)

    def median(self, case: str) -> float:
        return statistics.median(self.seconds[case])

    def worst(self, case: str) -> float:
        return max(self.seconds[case])

    def median_logged(self, case: str) -> float | None:
        return statistics.median(self.logged[case]) if self.logged.get(case) else None


@dataclass(frozen=True)
class Stop:
    seconds: float
    logged: float | None = None


def _says_stopped(log: Path) -> bool:
    return "\nINFO nullmx_milter.daemon stopped\n" in "\n" + log.read_text(errors="replace")


def timed_stop(process: subprocess.Popen[bytes], log: Path | None = None) -> Stop:
    """SIGTERM, wait for the exit (a failed exit is an error); when `log` is given, also
    when the daemon's "stopped" line appeared in it (at the latest, at the exit)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    logged: float | None = None
    while process.poll() is None:
        if logged is None and log is not None and _says_stopped(log):
            logged = time.monotonic() - started
        if time.monotonic() - started > 30:
            raise RuntimeError(f"milter pid {process.pid} still running 30 s after SIGTERM")
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"milter pid {process.pid} exited with {process.returncode}")
    if log is not None and logged is None:
        if not _says_stopped(log):
            raise RuntimeError(f"milter pid {process.pid} exited without logging 'stopped'")
        logged = elapsed
    return Stop(elapsed, logged)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Only when a stop went wrong: nothing may be left running."""
    if process.poll() is None:
        process.kill()
        process.wait()


def _answer_one(target: int | str, expected: str) -> None:
    with MilterClient(target) as client:
        answer = client.rcpt("<stop@null.test>")
    if (answer.code or answer.kind) != expected:
        raise RuntimeError(f"milter answered {answer} to a null-MX recipient, not {expected}")


def _daemon_stop(kind: str, workdir: Path, knot: KnotServer) -> Stop:
    """One start, one RCPT and one stop of the daemon on a unix or TCP socket."""
    unix_socket = workdir / "milter.sock" if kind == UNIX else None
    daemon = MilterDaemon(
        workdir, [knot.nameserver], unix_socket=unix_socket, dns_options=DNS_OPTIONS
    ).start()
    process, daemon.process = daemon.process, None
    assert process is not None
    try:
        _answer_one(str(unix_socket) if unix_socket else daemon.milter_port, "556")
        return timed_stop(process, daemon.log_path)
    finally:
        _kill(process)


def _activated_stop(workdir: Path, knot: KnotServer) -> Stop:
    """The same on a listener held by this process and passed as fd 3 (socket activation)."""
    metrics_port = free_port(socket.SOCK_STREAM)
    with held_listener() as listener:
        config = toml_config([knot.nameserver], FD, metrics_port, dns_options=DNS_OPTIONS)
        process = start_on_fd(workdir, config, listener)
        try:
            wait_for_port(metrics_port)
            _answer_one(int(listener.getsockname()[1]), "556")
            return timed_stop(process, workdir / "milter.log")
        finally:
            _kill(process)


def _baseline_stop() -> Stop:
    port = free_port(socket.SOCK_STREAM)
    command = [sys.executable, str(HERE / "null_pymilter.py"), f"inet:{port}@127.0.0.1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        _answer_one(port, "continue")
        return timed_stop(process)
    finally:
        _kill(process)


def run_stop_time(workdir: Path, sizes: StopSizes) -> StopTimes:
    """Every case in turn, round after round, so that the host's load drifts over all."""
    knot_dir = workdir / "knot-stop"
    knot_dir.mkdir(parents=True, exist_ok=True)
    knot = KnotServer(knot_dir).start()
    times = StopTimes()
    runs = 0

    def fresh() -> Path:
        nonlocal runs
        runs += 1
        folder = workdir / f"stop-{runs}"
        folder.mkdir()
        return folder

    cases: dict[str, Callable[[], Stop]] = {
        UNIX: lambda: _daemon_stop(UNIX, fresh(), knot),
        INET: lambda: _daemon_stop(INET, fresh(), knot),
        FD: lambda: _activated_stop(fresh(), knot),
        BASELINE: _baseline_stop,
    }
    try:
        for round_number in range(max(sizes.stops, sizes.baseline_stops)):
            for case, stop in cases.items():
                wanted = sizes.baseline_stops if case == BASELINE else sizes.stops
                if round_number < wanted:
                    result = stop()
                    times.seconds.setdefault(case, []).append(result.seconds)
                    if result.logged is not None:
                        times.logged.setdefault(case, []).append(result.logged)
    finally:
        knot.stop()
    return times
