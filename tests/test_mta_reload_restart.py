"""Reloads and socket-activated restarts under a stream of mail through a real Postfix.

Postfix runs the shipped main.cf (the milter on the unix socket in Postfix's spool,
milter_default_action = tempfail). SMTP clients stream messages, each to good and null-MX
recipients interleaved, and retry on 4xx as SMTP clients do. The printed figures are the
ones docs/operations.md "Reload and restart" quotes
(`pytest -s -m mta tests/test_mta_reload_restart.py`).
"""

from __future__ import annotations

import math
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator

import pytest

from daemon_process import MilterDaemon, reap, toml_config, wait_for_port
from dns_stub import wait_until
from exposition import metric
from knot import free_port
from mta_postfix import PostfixInstance, shipped_main_cf
from mta_stack import NAMESERVER, MtaStack
from smtp_stream import SENDER, MailStream, Outcome, Session
from socket_activation import held_listener, start_on_fd

pytestmark = pytest.mark.mta

# This module's Postfix instance (test_mta_milter_restart has 45).
PORT = 46
CLIENTS = 4
GOOD = ("real.test", "implicit.test")
NULL = ("null.test", "cname-null.test")
# What a null-MX recipient gets from a new connection in each mode.
CODES = {"enforce": 556, "dry-run": 250}
# The bound under test: a mode change is in force for connections opened this long after
# the SIGUSR1.
SWITCH_BOUND = 1.0
# The files written before each SIGUSR1: a mode, or a broken file (which tries the other
# mode, so that a reload that took any of it would show).
RELOADS = (
    "dry-run", "broken-key", "enforce", "broken-syntax", "dry-run",
    "broken-value", "enforce", "missing", "dry-run", "enforce",
)  # fmt: skip
RESTARTS = 5
# Accepted messages per milter process in the restart test.
PER_PROCESS = 15


def other(mode: str) -> str:
    return "enforce" if mode == "dry-run" else "dry-run"


def policy(mode: str, change: str) -> str | None:
    """The [policy] text written for `change` while `mode` is in force (None: no file)."""
    if change in CODES:
        return f'[policy]\nmode = "{change}"\n'
    if change == "broken-key":
        return f'[policy]\nmode = "{other(mode)}"\nbogus = 1\n'
    if change == "broken-syntax":
        return f'[policy]\nmode = "{other(mode)}"\n[cache\n'
    if change == "broken-value":
        return '[policy]\nmode = "sometimes"\n'
    return None


@pytest.fixture(scope="module")
def postfix(mta_stack: MtaStack) -> Iterator[PostfixInstance]:
    instance = PostfixInstance(
        mta_stack.netns,
        mta_stack.folder("postfix-operations"),
        next_hop=mta_stack.sink.port,
        port=PORT,
        main_cf=shipped_main_cf(),
    )
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def probe(stack: MtaStack) -> tuple[float, int]:
    """A new SMTP session to one null-MX address, no DATA: (when greeted, the RCPT code)."""
    with stack.smtp(PORT) as client:
        greeted = time.monotonic()
        client.ehlo()
        client.mail(SENDER)
        code = client.rcpt("probe@null.test")[0]
        client.rset()
    return greeted, code


def reloads(stack: MtaStack, milter: MilterDaemon, result: str) -> float:
    return metric(stack.metrics_text(milter), "nullmx_config_reloads_total", result=result)


def modes_possible(history: list[tuple[float, str]], session: Session) -> set[str]:
    """The modes `session`'s milter connection (opened between the session's start and its
    greeting) may have had: each mode in force in that span, and the one before a reload
    until SWITCH_BOUND after that reload's signal. `history`: (signal time, mode after)."""
    end = session.greeted if session.greeted is not None else session.started
    possible: set[str] = set()
    for index, (signalled, mode) in enumerate(history):
        following = history[index + 1][0] if index + 1 < len(history) else math.inf
        if signalled <= end and session.started < following + SWITCH_BOUND:
            possible.add(mode)
    return possible


def test_reloads_under_a_stream_cost_no_4xx_and_lose_nothing(
    mta_stack: MtaStack, postfix: PostfixInstance
) -> None:
    milter = mta_stack.milter(unix_socket=postfix.milter_socket())

    def write(text: str | None) -> None:
        if text is None:
            milter.config_path.unlink()
        else:
            config = toml_config([NAMESERVER], milter.libmilter_socket, milter.metrics_port)
            milter.config_path.write_text(config + text)

    mode = "enforce"
    history: list[tuple[float, str]] = [(-math.inf, mode)]
    switches: list[float] = []
    probe_codes: list[int] = []
    try:
        with MailStream(
            mta_stack,
            PORT,
            "reload",
            good_domains=GOOD,
            null_domains=NULL,
            null_final=CODES.values(),
            clients=CLIENTS,
        ) as stream:
            stream.wait_for(lambda: stream.accepted >= 10, 60)
            for change in RELOADS:
                result = "success" if change in CODES else "failure"
                before = reloads(mta_stack, milter, result)
                write(policy(mode, change))
                assert milter.process is not None
                signalled = time.monotonic()
                milter.process.send_signal(signal.SIGUSR1)
                # New connections until one shows the mode now in force.
                wanted = CODES[change] if change in CODES else CODES[mode]
                while True:
                    greeted, code = probe(mta_stack)
                    probe_codes.append(code)
                    assert code in CODES.values(), f"probe after {change}: {code}"
                    if code == wanted:
                        break
                    assert greeted - signalled < 5 * SWITCH_BOUND, f"{change} not in force"
                if change in CODES:
                    switches.append(greeted - signalled)
                    mode = change
                history.append((signalled, mode))
                wait_until(lambda: reloads(mta_stack, milter, result) == before + 1, 10)  # noqa: B023
                # Let the stream run on it past the bound: those sessions have one mode only.
                stream.wait_for(
                    lambda: len(stream.sessions_since(signalled + SWITCH_BOUND)) >= 4,  # noqa: B023
                    30,
                )
                if stream.wrong:
                    break
            stream.finish(0)
        assert not stream.wrong, stream.wrong[:10]
        text = mta_stack.metrics_text(milter)
    finally:
        milter.stop()

    # Every session that reached RCPT had the mode in force when it connected.
    mismatched = [
        (session, sorted(modes_possible(history, session)))
        for session in stream.sessions
        if session.null_codes
        and {"dry-run" if session.null_codes[0] == 250 else "enforce"}
        - modes_possible(history, session)
    ]
    tempfails = [session.tempfail for session in stream.sessions if session.tempfail]
    ours = stream.delivered(postfix)
    expected = stream.expected_deliveries()
    dry_run_accepted = sum(
        session.outcome is Outcome.ACCEPTED and 250 in session.null_codes
        for session in stream.sessions
    )
    print(
        f"\nreload under a stream: {len(RELOADS)} SIGUSR1 ({len(switches)} mode changes, "
        f"{len(RELOADS) - len(switches)} broken files) during {len(stream.sent)} messages "
        f"from {CLIENTS} clients, {stream.attempts} sessions + {len(probe_codes)} probes; "
        f"4xx replies: {len(tempfails)}, sessions lost: {stream.broken}; mode change in force "
        f"for new connections after median {statistics.median(switches) * 1000:.0f} ms, "
        f"max {max(switches) * 1000:.0f} ms; {len(ours)} recipients delivered "
        f"({len(expected)} expected, {dry_run_accepted} messages accepted in dry-run)"
    )
    assert not tempfails, tempfails[:10]
    lost = [session.replies for session in stream.sessions if session.outcome is Outcome.BROKEN]
    assert not lost, lost[:5]
    assert max(switches) < SWITCH_BOUND
    assert not mismatched, mismatched[:5]
    # Both modes were seen by the stream, so the check above could fail either way.
    assert {250, 556} <= {code for session in stream.sessions for code in session.null_codes}
    assert metric(text, "nullmx_config_reloads_total", result="success") == len(switches)
    assert metric(text, "nullmx_config_reloads_total", result="failure") == len(RELOADS) - len(
        switches
    )
    # Nothing lost, nothing twice; a null-MX recipient only when accepted in dry-run.
    assert sorted(ours) == sorted(expected)
    assert "<>" not in mta_stack.sink.senders()
    assert "status=bounced" not in postfix.log()


def test_restarts_on_a_held_socket_refuse_no_connection_and_lose_nothing(
    mta_stack: MtaStack, postfix: PostfixInstance
) -> None:
    """The listening socket held as systemd's nullmx-milter.socket holds it, passed to each
    new process as fd 3; each restart is a SIGTERM and a new process, as systemd does it."""
    path = postfix.milter_socket()
    listener = held_listener(path, group="postfix")
    workdir = mta_stack.folder("socket-activated")
    processes: list[subprocess.Popen[bytes]] = []
    stops: list[float] = []
    gaps: list[float] = []
    log_start = len(postfix.log())

    def start() -> subprocess.Popen[bytes]:
        metrics_port = free_port(socket.SOCK_STREAM)
        config = toml_config([NAMESERVER], "fd:3", metrics_port)
        process = start_on_fd(workdir, config, listener, mta_stack.netns.prefix)
        processes.append(process)
        with mta_stack.netns.entered():
            wait_for_port(metrics_port, timeout=30)
        return process

    try:
        process = start()
        with MailStream(
            mta_stack, PORT, "activated", good_domains=GOOD, null_domains=NULL, clients=CLIENTS
        ) as stream:
            for restart in range(RESTARTS + 1):
                stream.wait_for(lambda: stream.accepted >= (restart + 1) * PER_PROCESS, 60)  # noqa: B023
                if restart == RESTARTS or stream.wrong:
                    break
                stopping = time.monotonic()
                process.send_signal(signal.SIGTERM)
                assert process.wait(30) == 0
                stops.append(time.monotonic() - stopping)
                process = start()
                gaps.append(time.monotonic() - stopping)
            stream.finish(0)
        assert not stream.wrong, stream.wrong[:10]
    finally:
        for running in processes:
            if running.poll() is None:
                running.send_signal(signal.SIGTERM)
        reap(processes)
        listener.close()
        path.unlink(missing_ok=True)

    ours = stream.delivered(postfix)
    log = postfix.log()[log_start:]
    refused = log.count("connect to Milter service")
    # Postfix's warnings for a milter connection lost before its first reply, and later.
    handshakes = log.count("read error in initial handshake")
    midway = log.count("reply packet header")
    tempfails = [session.tempfail for session in stream.sessions if session.tempfail]
    print(
        f"\nrestarts on a held socket: {RESTARTS} restarts (SIGTERM + new process on fd 3) "
        f"during {len(stream.sent)} messages from {CLIENTS} clients, {stream.attempts} "
        f"sessions; milter connections refused: {refused}; in-flight transactions that got "
        f"451 4.7.1 and were retried: {len(tempfails)} (Postfix logged {handshakes} milter "
        f"connections lost in the handshake, {midway} later); sessions lost: {stream.broken}; "
        f"stop median {statistics.median(stops):.2f} s, max {max(stops):.2f} s; "
        f"SIGTERM to the next process serving: median {statistics.median(gaps):.2f} s; "
        f"{len(ours)} recipients delivered"
    )
    assert len(stops) == RESTARTS
    assert refused == 0
    lost = [session.replies for session in stream.sessions if session.outcome is Outcome.BROKEN]
    assert not lost, lost[:5]
    # Every 4xx was Postfix's milter_default_action for a transaction that lost its milter.
    assert all(line.startswith("451 4.7.1 ") for line in tempfails), tempfails
    assert sorted(ours) == sorted(stream.expected_deliveries())
    assert len(ours) == len(GOOD) * len(stream.sent)
    assert "<>" not in mta_stack.sink.senders()
    assert "status=bounced" not in log
    milter_log = (workdir / "milter.log").read_text()
    assert milter_log.count("starting version=") == RESTARTS + 1
    assert milter_log.count("stopping on SIGTERM") == RESTARTS + 1
