"""Through real Postfix and real Sendmail: the 556 with its "Did you mean" line arrives
verbatim, and a null-MX From header is rejected 550 5.7.27 when the check is on, delivered
when it is off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from daemon_process import MilterDaemon
from milter_client import MilterClient
from mta_postfix import PostfixInstance, listener
from mta_sendmail import SendmailInstance
from mta_stack import MtaStack, reply_lines

pytestmark = pytest.mark.mta

SENDER = "sender@real.test"
HEADER_CHECK_ON = '[policy]\nheader_from_null_mx = "reject"\n'
# Postfix smtpd listeners and Sendmail daemon ports: one per milter, and Postfix asking
# the policy service.
POSTFIX_OFF, POSTFIX_ON, POSTFIX_POLICY = 61, 62, 63
SENDMAIL_OFF, SENDMAIL_ON = 10061, 10062
POLICY_SOCKET = "nullmx-suggest-policy.sock"
FILTER_OPTIONS = "F=T, T=C:10s;S:10s;R:10s;E:1m"


@dataclass
class Milters:
    off: MilterDaemon  # defaults: header From check off
    on: MilterDaemon  # header_from_null_mx = "reject"


@pytest.fixture(scope="module")
def milters(mta_stack: MtaStack) -> Milters:
    return Milters(mta_stack.milter(), mta_stack.milter(HEADER_CHECK_ON))


@pytest.fixture(scope="module")
def postfix(mta_stack: MtaStack, milters: Milters) -> Iterator[PostfixInstance]:
    def smtpd(port: int, daemon: MilterDaemon) -> str:
        return listener(port, f"smtpd_milters=inet:127.0.0.1:{daemon.milter_port}")

    policy = f"check_policy_service unix:nullmx-milter/{POLICY_SOCKET}"
    instance = PostfixInstance(
        mta_stack.netns,
        mta_stack.folder("postfix-suggest"),
        next_hop=mta_stack.sink.port,
        port=POSTFIX_OFF - 1,
        main_cf="smtpd_milters =\nmilter_default_action = tempfail\n",
        master_cf=smtpd(POSTFIX_OFF, milters.off)
        + smtpd(POSTFIX_ON, milters.on)
        + listener(
            POSTFIX_POLICY,
            f"{{ smtpd_recipient_restrictions = {policy}, permit_mynetworks,"
            " reject_unauth_destination }",
        ),
    )
    try:
        instance.start()
        socket_dir = instance.milter_socket().parent
        mta_stack.milter(f'[policy_service]\nlisten = "unix:{socket_dir / POLICY_SOCKET}"\n')
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def sendmail(mta_stack: MtaStack, milters: Milters) -> Iterator[SendmailInstance]:
    def filter_port(name: str, port: int, daemon: MilterDaemon) -> str:
        return (
            f"MAIL_FILTER(`{name}', `S={daemon.libmilter_socket}, {FILTER_OPTIONS}')dnl\n"
            f"DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA-{name}, "
            f"InputMailFilters={name}')dnl\n"
        )

    instance = SendmailInstance(
        mta_stack.netns,
        mta_stack.folder("sendmail-suggest"),
        next_hop=mta_stack.sink.port,
        milter_socket=milters.off.libmilter_socket,
        port=SENDMAIL_OFF - 1,
        mc=filter_port("nullmx-off", SENDMAIL_OFF, milters.off)
        + filter_port("nullmx-on", SENDMAIL_ON, milters.on),
    )
    try:
        yield instance.start()
    finally:
        instance.stop()


def direct_reply(stack: MtaStack, daemon: MilterDaemon, recipient: str) -> list[str]:
    """The reply as the milter builds it, asked directly over the milter protocol."""
    with stack.netns.entered(), MilterClient(daemon.milter_port) as client:
        client.mail(f"<{SENDER}>")
        return client.rcpt(f"<{recipient}>").lines()


def rcpt_reply(stack: MtaStack, port: int, recipient: str) -> list[str]:
    with stack.smtp(port) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        return reply_lines(*client.rcpt(recipient))


def send_with_from(stack: MtaStack, port: int, recipient: str, from_header: str) -> list[str]:
    """One message to `recipient` with the given From header; the reply to its DATA."""
    message = f"From: {from_header}\r\nTo: <{recipient}>\r\nSubject: From check\r\n\r\nHello.\r\n"
    with stack.smtp(port) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(recipient)[0] == 250
        return reply_lines(*client.data(message.encode()))


def mta_ports(mta: str) -> tuple[int, int]:
    return (POSTFIX_OFF, POSTFIX_ON) if mta == "postfix" else (SENDMAIL_OFF, SENDMAIL_ON)


@pytest.fixture(params=["postfix", "sendmail"])
def mta(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue(str(request.param))
    return str(request.param)


def test_suggestion_line_arrives_verbatim(mta_stack: MtaStack, milters: Milters, mta: str) -> None:
    recipient = f"{mta}-jane.doe@gmial.com"
    lines = rcpt_reply(mta_stack, mta_ports(mta)[0], recipient)
    assert lines == direct_reply(mta_stack, milters.off, recipient)
    assert lines == [
        f"556-5.1.10 <{recipient}>: Recipient address rejected: gmial.com does not accept mail",
        f"556-5.1.10 Did you mean <{mta}-jane.doe@gmail.com>?",
        "556-5.1.10 gmial.com publishes a null MX record (RFC 7505): it has declared that it "
        "receives no email",
        "556 5.1.10 Check the address for a typo, or reach the recipient another way",
    ]


def test_null_mx_from_rejected_when_on_delivered_when_off(mta_stack: MtaStack, mta: str) -> None:
    off, on = mta_ports(mta)
    rejected_to = f"{mta}-from-on@real.test"
    delivered_to = f"{mta}-from-off@real.test"
    rejected = send_with_from(mta_stack, on, rejected_to, "Jane <jane@nullsender.test>")
    assert rejected == [
        "550-5.7.27 <jane@nullsender.test>: Sender address rejected: the From header's domain "
        "nullsender.test does not accept mail",
        "550-5.7.27 nullsender.test publishes a null MX record (RFC 7505): replies to this "
        "message could never arrive",
        "550 5.7.27 Send from an address in a domain that accepts mail",
    ]
    delivered = send_with_from(mta_stack, off, delivered_to, "Jane <jane@nullsender.test>")
    assert delivered[-1].startswith("250"), delivered
    got = mta_stack.sink.wait_for_recipients(lambda seen: delivered_to in seen)
    assert delivered_to in got
    assert rejected_to not in got


def test_policy_service_reply_asks_the_question_through_postfix(
    mta_stack: MtaStack, postfix: PostfixInstance
) -> None:
    recipient = "policy-jane.doe@gmial.com"
    # Postfix maps the enhanced code X.1.10 of an access-style action to X.1.0 (smtpd_dsn_fix);
    # code and text pass unchanged.
    assert rcpt_reply(mta_stack, POSTFIX_POLICY, recipient) == [
        f"556 5.1.0 <{recipient}>: Recipient address rejected: gmial.com publishes a null MX "
        "record (RFC 7505) and accepts no mail; check the address for a typo, or reach the "
        "recipient another way; did you mean <policy-jane.doe@gmail.com>?"
    ]
