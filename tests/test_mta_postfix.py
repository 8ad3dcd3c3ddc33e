"""The milter behind a real Postfix, wired with the shipped config/postfix/main.cf."""

from __future__ import annotations

import grp
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from daemon_process import MilterDaemon
from milter_client import MilterClient
from mta_postfix import UNIX_SOCKET, PostfixInstance, listener, shipped_main_cf
from mta_stack import (
    DELIVERABLE,
    NULL_MX,
    MtaStack,
    median_message_seconds,
    send_transaction,
    tagged,
)

pytestmark = pytest.mark.mta

# One Postfix, one smtpd listener per setup; main.cf is the shipped one for all of them.
PLAIN_PORT = 25  # as shipped: the milter on the unix socket, smtpd not chrooted
CHROOT_PORT = 26  # as shipped, smtpd chrooted as Debian ships it
TCP_PORT = 27  # the milter over TCP
RESTRICTION_PORT = 28  # reject_unknown_recipient_domain beside the milter (as shipped)
DOWN_PORT = 29  # the milter's socket has nobody behind it
KILL_PORT = 30  # a milter (TCP) the test kills mid-session
NON_SMTPD_PORT = 31  # the second instance, with non_smtpd_milters
SENDER = "sender@real.test"
# Nothing listens on the discard port in the test's own network namespace.
DEAD_MILTER = "inet:127.0.0.1:9"


@dataclass
class PostfixSetup:
    stack: MtaStack
    postfix: PostfixInstance
    milter: MilterDaemon  # on TCP
    unix_milter: MilterDaemon  # where the shipped main.cf looks for it
    kill_milter: MilterDaemon


def postfix_socket(daemon: MilterDaemon) -> str:
    return f"inet:127.0.0.1:{daemon.milter_port}"


@pytest.fixture(scope="module")
def setup(mta_stack: MtaStack) -> Iterator[PostfixSetup]:
    milter = mta_stack.milter()
    kill_milter = mta_stack.milter(start=False)
    master_cf = (
        listener(CHROOT_PORT, chroot=True)
        + listener(TCP_PORT, f"smtpd_milters={postfix_socket(milter)}")
        + listener(RESTRICTION_PORT, "smtpd_recipient_restrictions=reject_unknown_recipient_domain")
        + listener(DOWN_PORT, f"smtpd_milters={DEAD_MILTER}")
        + listener(KILL_PORT, f"smtpd_milters={postfix_socket(kill_milter)}")
    )
    postfix = PostfixInstance(
        mta_stack.netns,
        mta_stack.folder("postfix"),
        next_hop=mta_stack.sink.port,
        port=PLAIN_PORT,
        main_cf=shipped_main_cf(),
        master_cf=master_cf,
    )
    try:
        postfix.start()
        unix_milter = mta_stack.milter(unix_socket=postfix.milter_socket())
        yield PostfixSetup(mta_stack, postfix, milter, unix_milter, kill_milter)
    finally:
        postfix.stop()


def expected_reply(setup: PostfixSetup, recipient: str) -> list[str]:
    """The reply as the milter builds it, asked directly over the milter protocol."""
    with setup.stack.netns.entered(), MilterClient(setup.milter.milter_port) as client:
        client.mail(f"<{SENDER}>")
        return client.rcpt(f"<{recipient}>").lines()


@pytest.mark.parametrize(
    "port",
    [
        pytest.param(PLAIN_PORT, id="unix"),
        pytest.param(CHROOT_PORT, id="unix-chroot"),
        pytest.param(TCP_PORT, id="tcp"),
    ],
)
def test_one_transaction_rejects_exactly_the_null_mx_recipients(
    setup: PostfixSetup, port: int
) -> None:
    tag = f"pf{port}"
    deliverable = tagged(tag, DELIVERABLE)
    null_mx = [*tagged(tag, NULL_MX), f"{tag}-utf8@bücher.test"]
    with setup.stack.smtp(port) as client:
        result = send_transaction(client, SENDER, [*deliverable, *null_mx], smtputf8=True)

    for recipient in deliverable:
        assert result.rcpt[recipient] == ["250 2.1.5 Ok"], recipient
    for recipient in null_mx:
        lines = result.rcpt[recipient]
        assert len(lines) == 3, lines
        assert all(line.startswith("556-5.1.10 ") for line in lines[:-1]), lines
        assert lines[-1].startswith("556 5.1.10 "), lines
        assert lines == expected_reply(setup, recipient)
    assert result.data[0].startswith("250 2.0.0 Ok: queued as "), result.data

    delivered = setup.stack.sink.wait_for_recipients(lambda got: set(deliverable) <= set(got))
    assert sorted(r for r in delivered if r.startswith(f"{tag}-")) == sorted(deliverable)
    rejects = [line for line in setup.postfix.log().splitlines() if "milter-reject: RCPT" in line]
    for recipient in null_mx:
        assert any(f"to=<{recipient}>" in line for line in rejects), recipient


def test_unix_socket_is_usable_by_postfix_only(setup: PostfixSetup) -> None:
    socket_path = setup.postfix.queue_dir / UNIX_SOCKET
    mode = socket_path.stat()
    assert stat.S_ISSOCK(mode.st_mode)
    assert stat.S_IMODE(mode.st_mode) == 0o660
    assert grp.getgrgid(mode.st_gid).gr_name == "postfix"


def test_milter_down_tempfails_and_nothing_bounces(setup: PostfixSetup) -> None:
    recipients = tagged("down", DELIVERABLE + NULL_MX)
    with setup.stack.smtp(DOWN_PORT) as client:
        result = send_transaction(client, SENDER, recipients)
    # Postfix finds the milter unreachable at MAIL FROM and refuses the transaction for now.
    assert result.mail == ["451 4.7.1 Service unavailable - try again later"]
    assert not any(lines[-1].startswith("250") for lines in result.rcpt.values()), result.rcpt
    assert not result.data
    assert_nothing_queued_or_bounced(setup, "down-")


def test_milter_killed_mid_session_tempfails_then_retry_delivers(setup: PostfixSetup) -> None:
    stack, daemon = setup.stack, setup.kill_milter
    first, second = tagged("kill", DELIVERABLE)
    stack.start_milter(daemon)
    with stack.smtp(KILL_PORT) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(first)[0] == 250
        assert daemon.process is not None
        daemon.process.kill()
        daemon.process.wait()
        code, text = client.rcpt(second)
        assert (code, text[:6]) == (451, b"4.7.1 "), text
        # The recipient accepted before the kill does not make it through either.
        assert client.docmd("DATA") == (451, b"4.7.1 Service unavailable - try again later")
    assert_nothing_queued_or_bounced(setup, "kill-")

    # The client kept the message; its retry goes through once the milter is back.
    stack.start_milter(daemon)
    with stack.smtp(KILL_PORT) as client:
        result = send_transaction(client, SENDER, [first, second])
    assert result.data[0].startswith("250 "), result
    delivered = stack.sink.wait_for_recipients(lambda got: {first, second} <= set(got))
    assert {first, second} <= set(delivered)


def assert_nothing_queued_or_bounced(setup: PostfixSetup, tag: str) -> None:
    assert "Mail queue is empty" in setup.postfix.queue()
    assert not [r for r in setup.stack.sink.recipients() if r.startswith(tag)]
    assert "<>" not in setup.stack.sink.senders()
    assert "status=bounced" not in setup.postfix.log()
    assert "sender non-delivery notification" not in setup.postfix.log()


def test_reject_unknown_recipient_domain_answers_before_the_milter(setup: PostfixSetup) -> None:
    before = setup.stack.metrics_text(setup.unix_milter)
    null, mixed, real = "rurd@null.test", "rurd@mixed.test", "rurd@real.test"
    with setup.stack.smtp(RESTRICTION_PORT) as client:
        result = send_transaction(client, SENDER, [null, mixed, real])
    # Postfix's own single-line reply; the milter never sees the recipient.
    assert result.rcpt[null] == [
        f"556 5.1.10 <{null}>: Recipient address rejected: "
        "Domain null.test does not accept mail (nullMX)"
    ]
    # Postfix calls any "." exchange a null MX; the milter (RFC 7505) lets a mixed set through.
    assert result.rcpt[mixed][0].startswith("556 5.1.10 "), result.rcpt[mixed]
    assert result.rcpt[real] == ["250 2.1.5 Ok"]
    after = setup.stack.metrics_text(setup.unix_milter)
    assert recipients_counted(after) - recipients_counted(before) == 1
    with setup.stack.smtp(PLAIN_PORT) as client:
        assert send_transaction(client, SENDER, [mixed]).rcpt[mixed] == ["250 2.1.5 Ok"]


def recipients_counted(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("nullmx_recipients_total{")
    )


def test_sendmail_command_is_not_filtered_with_shipped_config(setup: PostfixSetup) -> None:
    recipients = tagged("local", ["real@real.test", "null@null.test"])
    message = "Subject: local submission\n\nHello.\n"
    submitted = setup.postfix.sendmail(SENDER, recipients, message)
    assert submitted.returncode == 0, submitted.stderr
    # Without non_smtpd_milters the message is queued for both; delivery decides about the
    # null MX later (a real next hop would bounce it to the local sender).
    delivered = setup.stack.sink.wait_for_recipients(lambda got: set(recipients) <= set(got))
    assert set(recipients) <= set(delivered)


def test_non_smtpd_milters_holds_the_whole_message(
    mta_stack: MtaStack, setup: PostfixSetup
) -> None:
    postfix = PostfixInstance(
        mta_stack.netns,
        mta_stack.folder("postfix-non-smtpd"),
        next_hop=mta_stack.sink.port,
        port=NON_SMTPD_PORT,
        main_cf=shipped_main_cf() + f"non_smtpd_milters = {postfix_socket(setup.milter)}\n",
    )
    recipients = tagged("nonsmtpd", ["real@real.test", "null@null.test"])
    try:
        postfix.start()
        submitted = postfix.sendmail(SENDER, recipients, "Subject: held\n\nHello.\n")
        assert submitted.returncode == 0, submitted.stderr
        warning = "can't reject recipient in non-smtpd(8) submission"
        deadline = time.monotonic() + 20
        while warning not in postfix.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = postfix.log()
        assert warning in log
        assert "message not accepted, try again later" in log
        # Postfix cannot drop one recipient here: the whole message stays in the maildrop
        # queue and pickup retries it, forever. Nobody gets it, nobody hears about it.
        assert recipients[1] in postfix.queue()
        assert not [r for r in mta_stack.sink.recipients() if r.startswith("nonsmtpd-")]
        assert "status=bounced" not in log
    finally:
        postfix.stop()


def test_one_session_does_not_stall_40ms_per_message(setup: PostfixSetup) -> None:
    """A milter that negotiates DATA away costs ~40 ms per message over TCP (delayed ACK)."""
    with setup.stack.smtp(TCP_PORT) as client:
        median = median_message_seconds(client, SENDER, "latency@real.test")
    print(f"Postfix, one session, milter over TCP: median {median * 1000:.1f} ms per message")
    assert median < 0.020
