"""The policy service behind a real Postfix, wired with config/postfix/policy-service.cf."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon_process import MilterDaemon
from exposition import metric
from mta_postfix import REPO, PostfixInstance, listener
from mta_stack import DELIVERABLE, NULL_MX, MtaStack, send_transaction, tagged

pytestmark = pytest.mark.mta

SHIPPED = REPO / "config" / "postfix" / "policy-service.cf"
SOCKET_NAME = "nullmx-policy.sock"
POLICY_PORT = 40  # the shipped restrictions, the service running
DOWN_PORT = 41  # the same, with nothing behind the socket
SENDER = "sender@real.test"


@dataclass
class PolicySetup:
    stack: MtaStack
    postfix: PostfixInstance
    daemon: MilterDaemon


def shipped_restrictions() -> str:
    text = SHIPPED.read_text()
    if f"unix:nullmx-milter/{SOCKET_NAME}," not in text:
        raise ValueError(f"{SHIPPED} no longer names unix:nullmx-milter/{SOCKET_NAME}")
    return text


@pytest.fixture(scope="module")
def policy_setup(mta_stack: MtaStack) -> Iterator[PolicySetup]:
    dead = "check_policy_service { unix:nullmx-milter/nobody.sock, default_action=DUNNO }"
    postfix = PostfixInstance(
        mta_stack.netns,
        mta_stack.folder("postfix-policy"),
        next_hop=mta_stack.sink.port,
        port=POLICY_PORT,
        main_cf=shipped_restrictions(),
        master_cf=listener(
            DOWN_PORT,
            f"{{ smtpd_recipient_restrictions = {dead}, permit_mynetworks,"
            " reject_unauth_destination }",
        ),
    )
    try:
        postfix.start()
        socket_dir: Path = postfix.milter_socket().parent
        daemon = mta_stack.milter(f'[policy_service]\nlisten = "unix:{socket_dir / SOCKET_NAME}"\n')
        yield PolicySetup(mta_stack, postfix, daemon)
    finally:
        postfix.stop()


def test_null_mx_recipients_get_556_5_1_10_from_the_policy_service(
    policy_setup: PolicySetup,
) -> None:
    deliverable = tagged("pol", DELIVERABLE)
    null_mx = tagged("pol", NULL_MX)
    with policy_setup.stack.smtp(POLICY_PORT) as client:
        result = send_transaction(client, SENDER, [*deliverable, *null_mx])

    for recipient in deliverable:
        assert result.rcpt[recipient] == ["250 2.1.5 Ok"], recipient
    for recipient in null_mx:
        domain = recipient.split("@")[1]
        # The service answers "556 5.1.10 ...", but Postfix passes every access-style action
        # through smtpd_dsn_fix(), which maps recipient codes X.1.N it does not know (N > 8)
        # to X.1.0. The reply code and the text get through unchanged.
        assert result.rcpt[recipient] == [
            f"556 5.1.0 <{recipient}>: Recipient address rejected: {domain} publishes a null"
            " MX record (RFC 7505) and accepts no mail; check the address for a typo, or reach"
            " the recipient another way"
        ]
    assert result.data[0].startswith("250 2.0.0 Ok: queued as "), result.data
    delivered = policy_setup.stack.sink.wait_for_recipients(
        lambda got: set(deliverable) <= set(got)
    )
    assert sorted(r for r in delivered if r.startswith("pol-")) == sorted(deliverable)

    text = policy_setup.stack.metrics_text(policy_setup.daemon)
    labels = {"frontend": "policy", "code": "556", "enhanced": "5.1.10"}
    assert metric(text, "nullmx_frontend_replies_total", **labels) == len(null_mx)
    assert metric(text, "nullmx_replies_total", code="556", enhanced="5.1.10") == len(null_mx)
    assert metric(text, "nullmx_policy_requests_total", result="ok") == len(null_mx) + 2


def test_policy_service_down_lets_mail_through(policy_setup: PolicySetup) -> None:
    recipients = tagged("poldown", DELIVERABLE + NULL_MX)
    with policy_setup.stack.smtp(DOWN_PORT) as client:
        result = send_transaction(client, SENDER, recipients)
    assert all(lines == ["250 2.1.5 Ok"] for lines in result.rcpt.values()), result.rcpt
    assert result.data[0].startswith("250 "), result.data
