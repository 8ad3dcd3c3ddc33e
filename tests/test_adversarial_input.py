"""Hostile MAIL/RCPT arguments (tests/corpus/adversarial.txt): well-formed outcomes only.

Each entry runs through the engine (fake DNS) and through the real daemon over the milter
protocol (raw bytes, so NULs and invalid UTF-8 reach libmilter as an MTA would send them).
"""

from __future__ import annotations

import logging
import re
import socket
import struct
import time
from pathlib import Path

import pytest
from miltertest import MilterConnection, constants

from nullmx_milter.config import config_from_dict
from nullmx_milter.daemon import build
from nullmx_milter.engine import NullMxEngine, log_decision
from nullmx_milter.policy import Role
from nullmx_milter.policy_service import PolicyResponder

from conftest import StartDaemon
from corpus import CorpusEntry, load_corpus
from fakes import ZoneSource, engine_from_config
from knot import KnotServer
from milter_client import MilterAnswer
from reply_checks import check_reply, check_smtp_lines

ENTRIES = load_corpus()
SENDER_CHECK = '[policy]\nsender_null_mx = "reject"\n[log]\nlevel = "debug"\n'
# A log line must stay one printable ASCII line whatever the input was.
_SAFE_LOG = re.compile(r"[\x20-\x7e]*\Z")


def test_corpus_covers_every_kind_of_hostile_input() -> None:
    raw = [entry.argument for entry in ENTRIES]
    assert len(ENTRIES) >= 200
    assert {entry.role for entry in ENTRIES} == {"rcpt", "mail"}
    assert sum(b"\0" in arg for arg in raw) >= 10
    assert sum(b"\r" in arg or b"\n" in arg for arg in raw) >= 10
    assert sum(b"%" in arg for arg in raw) >= 10
    assert sum(len(arg) >= 65536 for arg in raw) >= 5
    assert sum(b"xn--" in arg.lower() for arg in raw) >= 10
    invalid_utf8 = 0
    for arg in raw:
        try:
            arg.decode("utf-8")
        except UnicodeDecodeError:
            invalid_utf8 += 1
    assert invalid_utf8 >= 10
    assert {"556", "550", "continue"} <= {entry.expect for entry in ENTRIES}


@pytest.fixture(scope="module")
def engine() -> NullMxEngine:
    return engine_from_config(config_from_dict({"policy": {"sender_null_mx": "reject"}}))


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.id for entry in ENTRIES])
def test_engine_outcome_reply_and_log_line(
    entry: CorpusEntry, engine: NullMxEngine, caplog: pytest.LogCaptureFixture
) -> None:
    argument = entry.text
    role = Role.RECIPIENT if entry.role == "rcpt" else Role.SENDER
    check = engine.check_recipient if role is Role.RECIPIENT else engine.check_sender
    decision = check(argument)
    outcome = decision.reply.code if decision.reply is not None else "continue"
    assert outcome == entry.expect
    if decision.reply is not None:
        check_reply(decision.reply)
    with caplog.at_level(logging.DEBUG, logger="nullmx_milter"):
        log_decision(decision, role, argument, "conn=1 qid=-")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert _SAFE_LOG.match(message), message[:200]


@pytest.fixture(scope="module")
def responder() -> PolicyResponder:
    config = config_from_dict({"policy": {"sender_null_mx": "reject"}})
    components = build(config, source=ZoneSource())
    return PolicyResponder(components.runtimes, components.metrics)


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.id for entry in ENTRIES])
def test_policy_service_action(entry: CorpusEntry, responder: PolicyResponder) -> None:
    """The same inputs through the other front end: one clean access action each."""
    if entry.role == "mail":
        attributes = {"protocol_state": "MAIL", "sender": entry.text}
    else:
        attributes = {"protocol_state": "RCPT", "sender": "", "recipient": entry.text}
    action = responder.respond(attributes)
    if entry.expect == "continue":
        assert action == "DUNNO"
    else:
        assert re.fullmatch(rf"{entry.expect} 5\.[0-9]+\.[0-9]+ [\x20-\x7e]+", action), action
        assert len(action) + len("action=\n") <= 512


def _session(port: int) -> MilterConnection:
    connection = MilterConnection(socket.create_connection(("127.0.0.1", port), timeout=10))
    connection.optneg_mta()
    return connection


def _send_raw(connection: MilterConnection, command: str, argument: bytes) -> MilterAnswer:
    """One MAIL or RCPT command with an argument of arbitrary bytes (NUL-terminated)."""
    payload = command.encode() + argument + b"\0"
    connection.sock.sendall(struct.pack("!I", len(payload)) + payload)
    kind, fields = connection.recv()
    if kind == constants.SMFIR_REPLYCODE:
        return MilterAnswer("reply", fields["smtpcode"], fields["text"], fields["space"])
    return MilterAnswer({constants.SMFIR_CONTINUE: "continue"}.get(kind, kind))


def _daemon_outcome(port: int, entry: CorpusEntry) -> MilterAnswer:
    connection = _session(port)
    try:
        if entry.role == "mail":
            return _send_raw(connection, constants.SMFIC_MAIL, entry.argument)
        sender = _send_raw(connection, constants.SMFIC_MAIL, b"<sender@real.test>")
        assert sender.kind == "continue"
        return _send_raw(connection, constants.SMFIC_RCPT, entry.argument)
    except (ConnectionError, EOFError):
        return MilterAnswer("closed")
    finally:
        connection.sock.close()


@pytest.mark.integration
def test_daemon_answers_every_corpus_entry_and_keeps_serving(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver], SENDER_CHECK)
    wrong: list[str] = []
    sent = {"rcpt": 0, "mail": 0}
    for entry in ENTRIES:
        answer = _daemon_outcome(daemon.milter_port, entry)
        outcome = answer.code or answer.kind
        if outcome != entry.milter_expect:
            wrong.append(f"{entry.id}: {outcome} != {entry.milter_expect}")
            continue
        if answer.code:
            check_smtp_lines(answer.lines(), answer.code)
        if outcome != "closed":
            sent[entry.role] += 1
    assert not wrong, wrong[:20]
    # Still serving after all of it.
    connection = _session(daemon.milter_port)
    assert _send_raw(connection, constants.SMFIC_MAIL, b"<a@real.test>").kind == "continue"
    assert _send_raw(connection, constants.SMFIC_RCPT, b"<b@null.test>").code == "556"
    connection.sock.close()

    # Logged once: one line per argument that reached a callback, plus the MAIL FROM sent
    # before each RCPT and the two commands of the final check.
    expected = sent["rcpt"] + sent["mail"] + sum(entry.role == "rcpt" for entry in ENTRIES) + 2

    def decision_lines() -> list[str]:
        return [line for line in daemon.log().splitlines() if " role=" in line]

    # The daemon writes its log from a background thread: wait for the last lines.
    deadline = time.monotonic() + 10.0
    while len(decision_lines()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    log = daemon.log()
    assert "Traceback" not in log
    assert "internal error" not in log
    assert len(decision_lines()) == expected
    assert all(_SAFE_LOG.match(line) for line in decision_lines())


def test_reliability_guide_states_the_corpus_size() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "reliability.md").read_text()
    stated = re.search(r"adversarial\.txt\): (\d[\d,]*) hostile", guide)
    assert stated is not None
    assert int(stated.group(1).replace(",", "")) == len(ENTRIES)
