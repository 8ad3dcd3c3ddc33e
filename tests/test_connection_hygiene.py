"""1,000 milter sessions that break off mid-protocol: the daemon keeps serving and its
thread and file-descriptor counts return to where they were."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from miltertest import MilterConnection, constants

from conftest import StartDaemon
from dns_stub import wait_until
from exposition import metric
from knot import KnotServer
from milter_client import MilterClient
from process_stats import ProcessStats, process_stats

pytestmark = pytest.mark.integration

BURST = 1000
CLIENT_THREADS = 8


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _negotiated(port: int) -> MilterConnection:
    connection = MilterConnection(_connect(port))
    connection.optneg_mta()
    return connection


def close_after_connect(port: int, index: int) -> None:
    _connect(port).close()


def close_after_optneg(port: int, index: int) -> None:
    _negotiated(port).sock.close()


def close_after_rcpt_answer(port: int, index: int) -> None:
    connection = _negotiated(port)
    connection.send_ar(constants.SMFIC_MAIL, args=["<a@real.test>"])
    connection.send_ar(constants.SMFIC_RCPT, args=[f"<b{index}@null.test>"])
    connection.sock.close()


def close_before_rcpt_answer(port: int, index: int) -> None:
    connection = _negotiated(port)
    connection.send_ar(constants.SMFIC_MAIL, args=["<a@real.test>"])
    connection._send(constants.SMFIC_RCPT, args=[f"<c{index}@real.test>"])
    connection.sock.close()


def garbage_bytes(port: int, index: int) -> None:
    with _connect(port) as sock:
        sock.sendall(random.Random(index).randbytes(1 + index % 300))


def garbage_after_optneg(port: int, index: int) -> None:
    connection = _negotiated(port)
    connection.sock.sendall(random.Random(index).randbytes(1 + index % 300))
    connection.sock.close()


def huge_length_header(port: int, index: int) -> None:
    with _connect(port) as sock:
        sock.sendall(struct.pack("!I", 0xFFFFFFF0) + b"R<a@null.test>")


def half_a_packet(port: int, index: int) -> None:
    connection = _negotiated(port)
    connection.sock.sendall(struct.pack("!I", 200) + b"R<a@null.")
    connection.sock.close()


def unknown_command(port: int, index: int) -> None:
    connection = _negotiated(port)
    connection.sock.sendall(struct.pack("!I", 3) + b"Zxy")
    with contextlib.suppress(OSError, EOFError):
        connection.sock.recv(64)
    connection.sock.close()


def reset_connection(port: int, index: int) -> None:
    connection = _negotiated(port)
    connection.send_ar(constants.SMFIC_MAIL, args=["<a@real.test>"])
    # SO_LINGER 0: the close sends a RST instead of a FIN.
    connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.sock.close()


BREAKERS: list[Callable[[int, int], None]] = [
    close_after_connect,
    close_after_optneg,
    close_after_rcpt_answer,
    close_before_rcpt_answer,
    garbage_bytes,
    garbage_after_optneg,
    huge_length_header,
    half_a_packet,
    unknown_command,
    reset_connection,
]


def serves(port: int) -> bool:
    with MilterClient(port) as client:
        client.mail("<a@real.test>")
        return client.rcpt("<z@null.test>").code == "556"


def test_broken_sessions_leak_no_threads_or_fds(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver])
    assert daemon.process is not None
    pid = daemon.process.pid
    for _ in range(3):
        assert serves(daemon.milter_port)
    baseline = process_stats(pid)

    def one(index: int) -> str:
        try:
            BREAKERS[index % len(BREAKERS)](daemon.milter_port, index)
        except (OSError, EOFError) as error:
            return f"{BREAKERS[index % len(BREAKERS)].__name__}: {error!r}"
        return ""

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        failures = [failure for failure in pool.map(one, range(BURST)) if failure]
    burst_seconds = time.monotonic() - started
    # The client side of every broken session went as planned (no refused connections).
    assert not failures, failures[:10]
    assert serves(daemon.milter_port)

    latest: list[ProcessStats] = []

    def back_to_baseline() -> bool:
        latest.append(process_stats(pid))
        return latest[-1].threads <= baseline.threads and latest[-1].fds <= baseline.fds

    try:
        settled = wait_until(back_to_baseline, 30, interval=0.2)
    except TimeoutError:
        pytest.fail(f"baseline {baseline}, now {latest[-1]}")
    print(
        f"hygiene: {BURST} broken sessions in {burst_seconds:.1f}s; baseline {baseline}; "
        f"back to {latest[-1]} after {settled:.1f}s"
    )
    assert serves(daemon.milter_port)
    assert "Traceback" not in daemon.log()
    # Every session that got as far as the milter was closed on its side too.
    wait_until(lambda: metric(daemon.metrics_text(), "nullmx_milter_connections_active") == 0, 10)
    assert metric(daemon.metrics_text(), "nullmx_milter_connections_total") >= BURST * 7 // 10
