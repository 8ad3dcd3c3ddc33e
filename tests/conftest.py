"""Shared fixtures: a real Knot DNS server, a DNSSEC-validating stack and the real daemon."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon_process import MilterDaemon, reap
from dnssec_stack import DnssecStack
from knot import BlackHole, KnotServer
from mta_stack import MtaStack

StartDaemon = Callable[..., MilterDaemon]


@pytest.fixture(scope="session")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    """Knot on 127.0.0.1 serving tests/zones (and a SERVFAIL subtree, broken.test)."""
    server = KnotServer(tmp_path_factory.mktemp("knot")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def black_hole() -> Iterator[BlackHole]:
    """A nameserver address that never answers (DNS timeouts)."""
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture(scope="session")
def stopping_daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Daemons sent SIGTERM by tests, reaped once at the end instead of one by one."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    reap(processes)


@pytest.fixture
def start_daemon(
    tmp_path: Path, stopping_daemons: list[subprocess.Popen[bytes]]
) -> Iterator[StartDaemon]:
    """A factory: start_daemon(nameservers, extra_config) -> running MilterDaemon."""
    started: list[MilterDaemon] = []

    def start(nameservers: list[str], extra_config: str = "") -> MilterDaemon:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        daemon = MilterDaemon(workdir, nameservers, extra_config)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        process = daemon.terminate()
        if process is not None:
            stopping_daemons.append(process)


@pytest.fixture(scope="session")
def mta_stack() -> Iterator[MtaStack]:
    """A network namespace with Knot on 127.0.0.1:53 and smtp-sink, for real-MTA tests."""
    stack = MtaStack("mta").start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def dnssec_stack() -> Iterator[DnssecStack]:
    """A namespace with a signing Knot behind a validating (and a plain) unbound."""
    stack = DnssecStack("dnssec").start()
    yield stack
    stack.stop()
