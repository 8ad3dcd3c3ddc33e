"""SIGUSR1 reload, fast stop and socket activation, on the installed daemon with Knot."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from miltertest import constants

from http_page import fetch

from conftest import StartDaemon
from daemon_process import CONSOLE_SCRIPT, MilterDaemon, toml_config, wait_for_port
from exposition import metric
from knot import KnotServer, free_port
from milter_client import MilterClient
from socket_activation import held_listener, start_on_fd

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


def reloads(daemon: MilterDaemon, result: str) -> float:
    return metric(daemon.metrics_text(), "nullmx_config_reloads_total", result=result)


def reload(daemon: MilterDaemon, config_text: str, result: str = "success") -> None:
    """Write the config file, send SIGUSR1, wait until the daemon counted the reload."""
    before = reloads(daemon, result)
    daemon.config_path.write_text(config_text)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGUSR1)
    wait_until(lambda: reloads(daemon, result) == before + 1)


def status_text(daemon: MilterDaemon) -> str:
    return fetch(f"http://127.0.0.1:{daemon.metrics_port}/status").body


def config_text(daemon: MilterDaemon, knot: KnotServer, extra: str = "") -> str:
    return toml_config([knot.nameserver], daemon.libmilter_socket, daemon.metrics_port, extra)


def test_reload_switches_new_connections_and_keeps_old_ones(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver])
    text = daemon.metrics_text()
    assert metric(text, "nullmx_config_last_reload_successful") == 1
    loaded_at = metric(text, "nullmx_config_last_reload_success_timestamp_seconds")
    assert abs(loaded_at - time.time()) < 60
    with MilterClient(daemon.milter_port) as before:
        assert before.rcpt("<a@null.test>").code == "556"
        reload(daemon, config_text(daemon, knot, '[policy]\nmode = "dry-run"\n'))
        # The connection opened before the reload keeps the config it started with...
        assert before.rcpt("<b@null.test>").code == "556"
        # ...while a new one gets the reloaded config.
        with MilterClient(daemon.milter_port) as after:
            assert after.rcpt("<c@null.test>").kind == "continue"
    text = daemon.metrics_text()
    assert metric(text, "nullmx_recipients_total", verdict="would_reject") == 1
    assert metric(text, "nullmx_config_last_reload_success_timestamp_seconds") >= loaded_at
    assert "reloaded config=" in daemon.log()
    assert "mode=dry-run" in daemon.log()


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        pytest.param(
            '[policy]\nmode = "enforce"\nbogus = 1\n', "policy.bogus: unknown key", id="key"
        ),
        pytest.param('[policy]\nmode = "sometimes"\n', "policy.mode: must be one of", id="value"),
        pytest.param("[policy\nmode = 1\n", "not valid TOML", id="syntax"),
        pytest.param(None, "cannot read", id="unreadable"),
    ],
)
def test_a_bad_file_changes_nothing(
    knot: KnotServer, start_daemon: StartDaemon, broken: str | None, named: str
) -> None:
    daemon = start_daemon([knot.nameserver], '[policy]\nmode = "dry-run"\n')
    assert daemon.process is not None
    if broken is None:
        daemon.config_path.unlink()
        daemon.process.send_signal(signal.SIGUSR1)
        wait_until(lambda: reloads(daemon, "failure") == 1)
    else:
        reload(daemon, config_text(daemon, knot) + broken, result="failure")
    with MilterClient(daemon.milter_port) as client:
        assert client.rcpt("<a@null.test>").kind == "continue", "dry-run must stay in force"
    text = daemon.metrics_text()
    assert metric(text, "nullmx_config_last_reload_successful") == 0
    assert reloads(daemon, "success") == 0
    error_lines = [line for line in daemon.log().splitlines() if "reload failed" in line]
    assert len(error_lines) == 1
    assert named in error_lines[0]
    report = status_text(daemon)
    assert named in report
    assert "211-last failed reload: " in report
    # A good file afterwards is taken again.
    reload(daemon, config_text(daemon, knot))
    with MilterClient(daemon.milter_port) as client:
        assert client.rcpt("<b@null.test>").code == "556"
    assert metric(daemon.metrics_text(), "nullmx_config_last_reload_successful") == 1


def test_settings_bound_to_sockets_need_a_restart(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver])
    other = toml_config(
        [knot.nameserver],
        f"inet:{free_port(socket.SOCK_STREAM)}@127.0.0.1",
        daemon.metrics_port,
        '[policy]\nmode = "dry-run"\nsender_null_mx = "reject"\n',
    )
    reload(daemon, other)
    report = status_text(daemon)
    assert "211-needs restart: milter.socket, policy.sender_null_mx\n" in report
    assert f"211-socket: {daemon.libmilter_socket}\n" in report
    assert f"211-config: {daemon.config_path}, loaded " in report
    log = daemon.log()
    assert "reload: milter.socket changed but needs a restart" in log
    assert "reload: policy.sender_null_mx changed but needs a restart" in log
    with MilterClient(daemon.milter_port) as client:
        # Still served where it was, with the live part of the new file (dry-run) in force.
        assert client.rcpt("<a@null.test>").kind == "continue"


def test_reload_applies_new_nameservers(
    knot: KnotServer, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    second = KnotServer(tmp_path / "second-knot").start()
    try:
        daemon = start_daemon([knot.nameserver])
        with MilterClient(daemon.milter_port) as client:
            assert client.rcpt("<a@null.test>").code == "556"
        moved = toml_config([second.nameserver], daemon.libmilter_socket, daemon.metrics_port)
        reload(daemon, moved)
        report = status_text(daemon)
        assert f"211-dns nameservers: {second.nameserver} " in report
        assert "211-cache: 0 of " in report, "answers from the old server must be dropped"
        with MilterClient(daemon.milter_port) as client:
            assert client.rcpt("<b@null.test>").code == "556"
        assert "211-cache: 1 of " in status_text(daemon)
    finally:
        second.stop()


def _stop_seconds(daemon: MilterDaemon, signal_number: int) -> float:
    assert daemon.process is not None
    process, daemon.process = daemon.process, None
    started = time.monotonic()
    process.send_signal(signal_number)
    process.wait(30)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, daemon.log()
    return elapsed


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
@pytest.mark.parametrize("unix", [False, True], ids=["inet", "unix"])
def test_stops_well_before_libmilters_five_second_poll(
    knot: KnotServer, tmp_path: Path, signal_number: int, unix: bool
) -> None:
    """libmilter alone needs up to 5 s to notice a stop; the figures are in `make bench`."""
    daemon = MilterDaemon(
        tmp_path, [knot.nameserver], unix_socket=tmp_path / "m.sock" if unix else None
    ).start()
    with MilterClient(str(daemon.unix_socket) if unix else daemon.milter_port) as client:
        assert client.rcpt("<a@null.test>").code == "556"
    assert _stop_seconds(daemon, signal_number) < 3.0
    assert "stopping on " + signal.Signals(signal_number).name in daemon.log()


def test_socket_activation_serves_on_fd_3_and_restarts_lose_no_connection(
    knot: KnotServer, tmp_path: Path
) -> None:
    listener = held_listener()
    metrics_port = free_port(socket.SOCK_STREAM)
    config = toml_config([knot.nameserver], "fd:3", metrics_port)
    port = listener.getsockname()[1]
    try:
        process = start_on_fd(tmp_path, config, listener)
        wait_for_port(metrics_port)
        with MilterClient(port) as client:
            assert client.rcpt("<a@null.test>").code == "556"
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        assert process.returncode == 0
        # Between two processes the held socket still accepts into its backlog: a client
        # that connects now is served by the next process.
        early = socket.create_connection(("127.0.0.1", port), timeout=30)
        process = start_on_fd(tmp_path, config, listener)
        try:
            with MilterClient(early) as waiting:
                assert waiting.rcpt("<b@null.test>").code == "556"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
        assert process.returncode == 0
    finally:
        listener.close()
    log = (tmp_path / "milter.log").read_text()
    assert log.count("starting version=") == 2
    assert "socket=fd:3" in log


def test_a_passed_socket_that_the_config_does_not_use_is_named(
    knot: KnotServer, tmp_path: Path
) -> None:
    listener = held_listener()
    metrics_port = free_port(socket.SOCK_STREAM)
    milter_port = free_port(socket.SOCK_STREAM)
    config = toml_config([knot.nameserver], f"inet:{milter_port}@127.0.0.1", metrics_port)
    try:
        process = start_on_fd(tmp_path, config, listener)
        try:
            wait_for_port(milter_port)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    finally:
        listener.close()
    log = (tmp_path / "milter.log").read_text()
    assert (
        "systemd passed a listening socket (nullmx-milter.socket is active) but "
        f'milter.socket = inet:{milter_port}@127.0.0.1 does not use it; set milter.socket = "fd:3"'
    ) in log


def test_fd_that_is_not_a_listening_socket_is_a_clear_error(
    knot: KnotServer, tmp_path: Path
) -> None:
    config_path = tmp_path / "nullmx-milter.toml"
    config_path.write_text(toml_config([knot.nameserver], "fd:7", free_port(socket.SOCK_STREAM)))
    result = subprocess.run(
        [CONSOLE_SCRIPT, "run", "--allow-root", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot serve on milter.socket = fd:7: fd 7 is not an open socket" in result.stderr


def test_header_from_check_cannot_be_switched_on_by_a_reload(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver], "[status]\ntop_domains = 3\n")
    reload(
        daemon,
        config_text(
            daemon, knot, '[policy]\nheader_from_null_mx = "reject"\n[status]\ntop_domains = 0\n'
        ),
    )
    report = status_text(daemon)
    assert "211-needs restart: policy.header_from_null_mx\n" in report
    # The live part of the same file is in force: the top domains are hidden now.
    assert "top rejected" not in report
    assert "reload: policy.header_from_null_mx changed but needs a restart" in daemon.log()
    with MilterClient(daemon.milter_port) as client:
        # Still negotiated as at start: no header callbacks.
        assert client.protocol & constants.SMFIP_NOHDRS
