"""The milter behind a real Sendmail, wired with the shipped config/sendmail/nullmx-milter.mc."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from daemon_process import MilterDaemon
from milter_client import MilterClient
from mta_sendmail import SendmailInstance
from mta_stack import (
    DELIVERABLE,
    NULL_MX,
    MtaStack,
    median_message_seconds,
    reply_lines,
    send_transaction,
    tagged,
)

pytestmark = pytest.mark.mta

# One Sendmail, one DAEMON_OPTIONS port per setup; all filters use the shipped F= and T=.
UNIX_PORT = 10025  # the shipped .mc as it is: the milter on a unix socket
TCP_PORT = 10026  # the milter over TCP
DOWN_PORT = 10027  # the milter's socket has nobody behind it
KILL_PORT = 10028  # a milter the test kills mid-session
SENDER = "sender@real.test"
FILTER_OPTIONS = "F=T, T=C:10s;S:10s;R:10s;E:1m"
TEMPFAIL = "451 4.3.2 Please try again later"


@dataclass
class SendmailSetup:
    stack: MtaStack
    sendmail: SendmailInstance
    milter: MilterDaemon  # on TCP
    kill_milter: MilterDaemon


def filter_port(name: str, port: int, socket: str) -> str:
    """.mc lines: a filter `name` on `socket`, used only by a daemon on 127.0.0.1:PORT."""
    return (
        f"MAIL_FILTER(`{name}', `S={socket}, {FILTER_OPTIONS}')dnl\n"
        f"DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA-{name}, "
        f"InputMailFilters={name}')dnl\n"
    )


@pytest.fixture(scope="module")
def setup(mta_stack: MtaStack) -> Iterator[SendmailSetup]:
    milter = mta_stack.milter()
    # Sendmail refuses a socket below world-writable /tmp ("unsafe"), so: /run, as shipped.
    unix_milter = mta_stack.milter(unix_socket=mta_stack.run_folder() / "nullmx-milter.sock")
    kill_milter = mta_stack.milter(start=False)
    sendmail = SendmailInstance(
        mta_stack.netns,
        mta_stack.folder("sendmail"),
        next_hop=mta_stack.sink.port,
        milter_socket=unix_milter.libmilter_socket,
        port=UNIX_PORT,
        mc=filter_port("nullmx-tcp", TCP_PORT, milter.libmilter_socket)
        + filter_port("nullmx-down", DOWN_PORT, "inet:9@127.0.0.1")
        + filter_port("nullmx-kill", KILL_PORT, kill_milter.libmilter_socket),
    )
    try:
        sendmail.start()
        yield SendmailSetup(mta_stack, sendmail, milter, kill_milter)
    finally:
        sendmail.stop()


def expected_reply(setup: SendmailSetup, recipient: str) -> list[str]:
    """The reply as the milter builds it, asked directly over the milter protocol."""
    with setup.stack.netns.entered(), MilterClient(setup.milter.milter_port) as client:
        client.mail(f"<{SENDER}>")
        return client.rcpt(f"<{recipient}>").lines()


@pytest.mark.parametrize(
    "port", [pytest.param(TCP_PORT, id="tcp"), pytest.param(UNIX_PORT, id="unix")]
)
def test_one_transaction_rejects_exactly_the_null_mx_recipients(
    setup: SendmailSetup, port: int
) -> None:
    tag = f"sm{port}"
    deliverable = tagged(tag, DELIVERABLE)
    # Sendmail does not offer SMTPUTF8: IDN recipients arrive in A-label form.
    null_mx = tagged(tag, NULL_MX)
    with setup.stack.smtp(port) as client:
        result = send_transaction(client, SENDER, [*deliverable, *null_mx])

    for recipient in deliverable:
        assert result.rcpt[recipient] == [f"250 2.1.5 <{recipient}>... Recipient ok"]
    for recipient in null_mx:
        lines = result.rcpt[recipient]
        assert len(lines) == 3, lines
        assert all(line.startswith("556-5.1.10 ") for line in lines[:-1]), lines
        assert lines[-1].startswith("556 5.1.10 "), lines
        assert lines == expected_reply(setup, recipient)
    assert result.data[0].endswith("Message accepted for delivery"), result.data

    delivered = setup.stack.sink.wait_for_recipients(lambda got: set(deliverable) <= set(got))
    assert sorted(r for r in delivered if r.startswith(f"{tag}-")) == sorted(deliverable)


def test_milter_down_tempfails_and_nothing_bounces(setup: SendmailSetup) -> None:
    recipients = tagged("smdown", DELIVERABLE + NULL_MX)
    with setup.stack.smtp(DOWN_PORT) as client:
        result = send_transaction(client, SENDER, recipients)
    # Sendmail cannot reach the milter at MAIL FROM and refuses the transaction for now.
    assert result.mail == [TEMPFAIL]
    assert not any(lines[-1].startswith("250") for lines in result.rcpt.values()), result.rcpt
    assert not result.data
    assert_nothing_queued_or_bounced(setup, "smdown-")


def test_milter_killed_mid_session_tempfails_then_retry_delivers(setup: SendmailSetup) -> None:
    stack, daemon = setup.stack, setup.kill_milter
    first, second = tagged("smkill", DELIVERABLE)
    stack.start_milter(daemon)
    with stack.smtp(KILL_PORT) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(first)[0] == 250
        assert daemon.process is not None
        daemon.process.kill()
        daemon.process.wait()
        assert reply_lines(*client.rcpt(second)) == [TEMPFAIL]
        # The recipient accepted before the kill does not make it through either.
        assert reply_lines(*client.docmd("DATA")) == [TEMPFAIL]
    assert_nothing_queued_or_bounced(setup, "smkill-")

    stack.start_milter(daemon)
    with stack.smtp(KILL_PORT) as client:
        result = send_transaction(client, SENDER, [first, second])
    assert result.data[0].startswith("250 "), result
    delivered = stack.sink.wait_for_recipients(lambda got: {first, second} <= set(got))
    assert {first, second} <= set(delivered)


def assert_nothing_queued_or_bounced(setup: SendmailSetup, tag: str) -> None:
    assert setup.sendmail.queued() == []
    assert not [r for r in setup.stack.sink.recipients() if r.startswith(tag)]
    assert "<>" not in setup.stack.sink.senders()


@pytest.mark.parametrize(
    ("port", "limit"),
    [
        pytest.param(UNIX_PORT, 0.020, id="unix"),
        # Sendmail's own macro packets stall ~40 ms twice per message over TCP (see the .mc).
        pytest.param(TCP_PORT, 0.200, id="tcp"),
    ],
)
def test_one_session_per_message_latency(setup: SendmailSetup, port: int, limit: float) -> None:
    with setup.stack.smtp(port) as client:
        median = median_message_seconds(client, SENDER, "latency@real.test")
    print(f"Sendmail, one session, port {port}: median {median * 1000:.1f} ms per message")
    assert median < limit
