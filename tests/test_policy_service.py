"""The Postfix policy delegation front end: responder, server and the real daemon."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nullmx_milter.policy import Mode, OnDnsError, SenderCheck
from nullmx_milter.policy_service import (
    MAX_LINE_OCTETS,
    PolicyResponder,
    PolicyServer,
    exim_action_for,
)

from conftest import StartDaemon
from daemon_process import MilterDaemon
from fakes import fake_runtimes
from knot import KnotServer, free_port
from policy_client import connect_unix, exchange


def request(**attributes: str) -> dict[str, str]:
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT", **attributes}


def responder(
    mode: Mode = Mode.ENFORCE,
    on_dns_error: OnDnsError = OnDnsError.ACCEPT,
    sender: SenderCheck = SenderCheck.OFF,
) -> PolicyResponder:
    runtimes, metrics = fake_runtimes(mode, on_dns_error, sender)
    return PolicyResponder(runtimes, metrics)


@pytest.mark.parametrize(
    ("attributes", "action"),
    [
        pytest.param(
            request(recipient="u@null.example"),
            "556 5.1.10 null.example publishes a null MX record (RFC 7505) and accepts no mail;"
            " check the address for a typo, or reach the recipient another way",
            id="null-mx",
        ),
        pytest.param(request(recipient="u@real.example"), "DUNNO", id="real"),
        pytest.param(request(recipient="u@broken.example"), "DUNNO", id="servfail-accept"),
        pytest.param(request(recipient=""), "DUNNO", id="empty"),
        pytest.param(request(recipient="postmaster"), "DUNNO", id="postmaster"),
        pytest.param(request(), "DUNNO", id="no-recipient"),
        pytest.param(
            {"protocol_state": "DATA", "recipient": "u@null.example"}, "DUNNO", id="data-state"
        ),
    ],
)
def test_actions(attributes: dict[str, str], action: str) -> None:
    assert responder().respond(attributes) == action


def test_tempfail_dry_run_and_sender() -> None:
    tempfail = responder(on_dns_error=OnDnsError.TEMPFAIL)
    assert tempfail.respond(request(recipient="u@broken.example")).startswith("451 4.4.3 ")
    dry = responder(mode=Mode.DRY_RUN).respond(request(recipient="u@null.example"))
    assert dry.startswith("WARN ")
    dry_tempfail = responder(mode=Mode.DRY_RUN, on_dns_error=OnDnsError.TEMPFAIL)
    assert dry_tempfail.respond(request(recipient="u@broken.example")) == (
        "WARN nullmx-milter dry-run: DNS lookup of broken.example failed (servfail); "
        "enforcing would answer 451"
    )
    sender = responder(sender=SenderCheck.REJECT)
    assert sender.respond({"protocol_state": "MAIL", "sender": "b@null.example"}).startswith(
        "550 5.7.27 "
    )
    assert sender.respond(request(sender="b@null.example", recipient="u@real.example")).startswith(
        "550 5.7.27 "
    )
    assert sender.respond(request(sender="", recipient="u@real.example")) == "DUNNO"


def exim_request(**attributes: str) -> dict[str, str]:
    return request(reply_format="exim", **attributes)


def test_exim_gets_the_milters_whole_reply_tab_separated() -> None:
    runtimes, metrics = fake_runtimes()
    engine = runtimes.current.engine
    service = PolicyResponder(runtimes, metrics)
    action = service.respond(exim_request(recipient="u@null.example"))
    assert action == (
        "556 5.1.10 <u@null.example>: Recipient address rejected: null.example does not accept"
        " mail\tnull.example publishes a null MX record (RFC 7505): it has declared that it"
        " receives no email\tCheck the address for a typo, or reach the recipient another way"
    )
    milter_reply = engine.check_recipient("u@null.example").reply
    assert milter_reply is not None
    assert action == exim_action_for(milter_reply)
    exim = {"frontend": "exim", "code": "556", "enhanced": "5.1.10"}
    policy = {**exim, "frontend": "policy"}
    assert metrics.registry.get_sample_value("nullmx_frontend_replies_total", exim) == 1
    assert metrics.registry.get_sample_value("nullmx_frontend_replies_total", policy) == 0


@pytest.mark.parametrize(
    ("attributes", "start"),
    [
        pytest.param(exim_request(recipient="u@real.example"), "DUNNO", id="real"),
        pytest.param(exim_request(recipient="u@broken.example"), "451 4.4.3 <u@", id="tempfail"),
        pytest.param(
            {"protocol_state": "MAIL", "reply_format": "exim", "sender": "b@null.example"},
            "550 5.7.27 <b@null.example>: Sender address rejected: ",
            id="sender",
        ),
        pytest.param(
            exim_request(recipient="u@null.example", sender="b@real.example"),
            "556 5.1.10 <u@null.example>: ",
            id="sender-ok-recipient-null",
        ),
    ],
)
def test_exim_tempfail_and_sender(attributes: dict[str, str], start: str) -> None:
    service = responder(on_dns_error=OnDnsError.TEMPFAIL, sender=SenderCheck.REJECT)
    assert service.respond(attributes).startswith(start)


def test_exim_dry_run_is_a_warning() -> None:
    action = responder(mode=Mode.DRY_RUN).respond(exim_request(recipient="u@null.example"))
    assert action == "WARN nullmx-milter dry-run: null.example publishes a null MX record"


@pytest.mark.parametrize("value", ["", "postfix", "EXIM", "exim "])
def test_other_reply_formats_get_postfix_answers(value: str) -> None:
    attributes = request(recipient="u@null.example", reply_format=value)
    assert responder().respond(attributes) == responder().respond(
        request(recipient="u@null.example")
    )


@pytest.mark.parametrize(
    "recipient",
    [
        pytest.param('"a\tb\rc\x00d%e{f}$g\\nh"@null.example', id="controls-and-syntax"),
        pytest.param('"' + "\t" * 300 + '"@null.example', id="long-tabs"),
        pytest.param('"u\u2028v%"@null.example', id="unicode-separator-and-percent"),
    ],
)
def test_exim_answer_cannot_split_where_it_should_not(recipient: str) -> None:
    action = responder().respond(exim_request(recipient=recipient))
    # Three template lines, so exactly two separators; one line; printable ASCII.
    assert action.count("\t") == 2, action
    assert action.replace("\t", " ").isprintable() and action.isascii(), action
    assert "%%" not in action


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PolicyServer]:
    runtimes, metrics = fake_runtimes(idle_timeout=0.5)
    policy_server = PolicyServer(
        f"unix:{tmp_path / 'policy.sock'}", PolicyResponder(runtimes, metrics), metrics
    )
    policy_server.start()
    yield policy_server
    policy_server.stop()


def connect(server: PolicyServer) -> socket.socket:
    return connect_unix(str(server.server_address)[len("unix:") :])


def test_persistent_connection_serves_many_requests(server: PolicyServer) -> None:
    with connect(server) as client:
        for recipient, expected in [
            ("a@real.example", b"action=DUNNO\n\n"),
            ("b@null.example", b"action=556 5.1.10 null.example publishes"),
            ("c@real.example", b"action=DUNNO\n\n"),
        ]:
            payload = f"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient={recipient}\n\n"
            assert exchange(client, payload.encode()).startswith(expected)
    assert (
        server.metrics.registry.get_sample_value(
            "nullmx_frontend_replies_total",
            {"frontend": "policy", "code": "556", "enhanced": "5.1.10"},
        )
        == 1
    )


def test_malformed_request_gets_dunno_and_the_connection_goes_on(server: PolicyServer) -> None:
    with connect(server) as client:
        assert exchange(client, b"garbage without equals\nrecipient=u@null.example\n\n") == (
            b"action=DUNNO\n\n"
        )
        good = b"protocol_state=RCPT\nrecipient=u@null.example\n\n"
        assert exchange(client, good).startswith(b"action=556 ")
    assert (
        server.metrics.registry.get_sample_value(
            "nullmx_policy_requests_total", {"result": "malformed"}
        )
        == 1
    )


def test_oversized_line_gets_dunno_and_close(server: PolicyServer) -> None:
    with connect(server) as client:
        answer = exchange(client, b"recipient=" + b"a" * (MAX_LINE_OCTETS * 2) + b"\n\n")
        assert answer == b"action=DUNNO\n\n"
        try:
            closed = client.recv(10) == b""
        except ConnectionResetError:
            closed = True
        assert closed


def test_a_bug_answers_dunno(server: PolicyServer) -> None:
    with connect(server) as client:
        answer = exchange(client, b"protocol_state=RCPT\nrecipient=u@bug.example\n\n")
        assert answer == b"action=DUNNO\n\n"
    assert (
        server.metrics.registry.get_sample_value(
            "nullmx_callback_errors_total", {"stage": "policy"}
        )
        == 1
    )


def test_idle_connection_is_closed(server: PolicyServer) -> None:
    with connect(server) as client:
        assert client.recv(10) == b""


@pytest.mark.integration
def test_daemon_serves_policy_requests_beside_the_milter(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    port = free_port(socket.SOCK_STREAM)
    daemon: MilterDaemon = start_daemon(
        [knot.nameserver], f'[policy_service]\nlisten = "inet:{port}@127.0.0.1"\n'
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        for recipient, expected in [
            ("u@to-null.example", b"action=556 5.1.10 to-null.example publishes"),
            ("u@real.test", b"action=DUNNO\n\n"),
            ("u@b\xc3\xbccher.test", b"action=556 5.1.10 xn--bcher-kva.test publishes"),
        ]:
            payload = b"protocol_state=RCPT\nrecipient=" + recipient.encode("latin-1") + b"\n\n"
            assert exchange(client, payload).startswith(expected), recipient
    line = 'nullmx_frontend_replies_total{code="556",enhanced="5.1.10",frontend="policy"} 2.0'
    assert line in daemon.metrics_text()
