"""sd_notify: the protocol alone, then the real daemon telling a fake systemd READY and STOPPING."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nullmx_milter import sd_notify

from daemon_process import MilterDaemon, wait_for_port
from knot import KnotServer
from milter_client import MilterClient
from systemd_unit import FakeSystemd


@pytest.fixture
def fake_systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    systemd = FakeSystemd(str(tmp_path / "notify.sock"))
    yield systemd
    systemd.close()


def test_notify_sends_the_state_to_a_path_socket(fake_systemd: FakeSystemd) -> None:
    assert sd_notify.notify("READY=1", {"NOTIFY_SOCKET": fake_systemd.address})
    assert fake_systemd.receive(1) == "READY=1"


def test_notify_handles_the_abstract_namespace() -> None:
    systemd = FakeSystemd(f"@nullmx-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        assert sd_notify.notify("STOPPING=1", {"NOTIFY_SOCKET": systemd.address})
        assert systemd.receive(1) == "STOPPING=1"
    finally:
        systemd.close()


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="unset"),
        pytest.param({"NOTIFY_SOCKET": ""}, id="empty"),
        pytest.param({"NOTIFY_SOCKET": "vsock:2:1234"}, id="unsupported"),
        pytest.param({"NOTIFY_SOCKET": "/nonexistent/notify.sock"}, id="unreachable"),
    ],
)
def test_notify_is_a_no_op_without_a_reachable_socket(environ: dict[str, str]) -> None:
    assert sd_notify.notify("READY=1", environ) is False


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.integration
def test_ready_only_once_the_socket_accepts_and_stopping_on_sigterm(
    knot: KnotServer, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    daemon = MilterDaemon(tmp_path, [knot.nameserver])
    try:
        daemon.start(env={"NOTIFY_SOCKET": fake_systemd.address}, wait=False)
        assert fake_systemd.receive() == "READY=1", daemon.log()
        # No retry: the moment systemd hears READY=1, the MTA must be able to connect.
        assert connects(daemon.milter_port)
        with MilterClient(daemon.milter_port) as client:
            assert client.rcpt("<a@null.test>").code == "556"
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        assert fake_systemd.receive() == "STOPPING=1"
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    assert "stopped" in daemon.log()


@pytest.mark.integration
def test_sigterm_before_the_milter_serves_stops_cleanly(
    knot: KnotServer, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    # A full notify queue holds the daemon in its READY=1 send: socket open, libmilter's
    # main loop (and its signal thread) not yet started. SIGTERM lands exactly there.
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.connect(fake_systemd.address)
    filler.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            filler.send(b"filler")
    filler.close()
    daemon = MilterDaemon(tmp_path, [knot.nameserver])
    try:
        daemon.start(env={"NOTIFY_SOCKET": fake_systemd.address}, wait=False)
        assert daemon.process is not None
        wait_for_port(daemon.milter_port)
        daemon.process.send_signal(signal.SIGTERM)
        messages: list[str] = []
        while not messages or messages[-1] != "STOPPING=1":
            messages.append(fake_systemd.receive())
        assert messages[-2:] == ["READY=1", "STOPPING=1"]
        assert set(messages[:-2]) == {"filler"}
        assert daemon.process.wait(20) == 0, daemon.log()
    finally:
        daemon.stop()
    assert "stopped" in daemon.log()
    assert "Traceback" not in daemon.log()
