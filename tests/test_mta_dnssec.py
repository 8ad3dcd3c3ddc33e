"""dns.dnssec through a real Postfix wired with the shipped config/postfix/main.cf.

The namespace's resolver on 127.0.0.1:53 is a validating unbound in front of a signing Knot
(dnssec_stack). The shipped unix-socket milter runs with dnssec = "require" (and
on_dns_error = "tempfail", to show a bogus answer as 451); a second smtpd listener has a
milter with dnssec = "off" over TCP, for the cases where the two differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dnssec_stack import PROBE
from mta_postfix import PostfixInstance, listener, shipped_main_cf
from mta_stack import MtaStack, send_transaction, tagged

pytestmark = pytest.mark.mta

REQUIRE_PORT = 25  # as shipped: smtpd_milters is the unix socket
OFF_PORT = 26
SENDER = "sender@real.signed.test"
REJECTED = "556"
ACCEPTED = "250"
TEMPFAILED = "451"

# recipient domain -> (reply code under "require", under "off")
CASES = {
    "null.signed.test": (REJECTED, REJECTED),
    "cname-null.signed.test": (REJECTED, REJECTED),
    "cname-other.signed.test": (REJECTED, REJECTED),
    "real.signed.test": (ACCEPTED, ACCEPTED),
    "null.insecure.test": (ACCEPTED, REJECTED),
    "cname-insecure.signed.test": (ACCEPTED, REJECTED),
    "null.bogus.test": (TEMPFAILED, ACCEPTED),
}


@dataclass
class DnssecPostfix:
    stack: MtaStack
    postfix: PostfixInstance


@pytest.fixture(scope="module")
def setup() -> Iterator[DnssecPostfix]:
    stack = MtaStack("mtadnssec", dnssec=True)
    try:
        stack.start()
        off = stack.milter(dns_options='timeout = 1.0\ndnssec = "off"\n')
        postfix = PostfixInstance(
            stack.netns,
            stack.folder("postfix"),
            next_hop=stack.sink.port,
            port=REQUIRE_PORT,
            main_cf=shipped_main_cf(),
            master_cf=listener(OFF_PORT, f"smtpd_milters=inet:127.0.0.1:{off.milter_port}"),
        )
        try:
            postfix.start()
            stack.milter(
                '[policy]\non_dns_error = "tempfail"\n',
                unix_socket=postfix.milter_socket(),
                dns_options=f'timeout = 1.0\ndnssec = "require"\ndnssec_probe = "{PROBE}"\n',
            )
            yield DnssecPostfix(stack, postfix)
        finally:
            postfix.stop()
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("port", "mode"),
    [pytest.param(REQUIRE_PORT, 0, id="require"), pytest.param(OFF_PORT, 1, id="off")],
)
def test_dnssec_verdicts_through_postfix(setup: DnssecPostfix, port: int, mode: int) -> None:
    tag = f"dnssec{port}"
    recipients = dict(
        zip(tagged(tag, [f"rcpt@{domain}" for domain in CASES]), CASES.values(), strict=True)
    )
    with setup.stack.smtp(port) as client:
        result = send_transaction(client, SENDER, list(recipients))

    for recipient, codes in recipients.items():
        lines = result.rcpt[recipient]
        expected = codes[mode]
        assert all(line.startswith(expected) for line in lines), (recipient, lines)
        if expected == REJECTED:
            assert len(lines) == 3, lines
            assert lines[-1].startswith("556 5.1.10 "), lines
        elif expected == TEMPFAILED:
            assert lines[-1].startswith("451 4.4.3 "), lines
        else:
            assert lines == ["250 2.1.5 Ok"], lines
    assert result.data[0].startswith("250 2.0.0 Ok: queued as "), result.data

    accepted = {r for r, codes in recipients.items() if codes[mode] == ACCEPTED}
    delivered = setup.stack.sink.wait_for_recipients(lambda got: accepted <= set(got))
    assert {r for r in delivered if r.startswith(f"{tag}-")} == accepted
    log = setup.postfix.log()
    for recipient, codes in recipients.items():
        if codes[mode] != ACCEPTED:
            assert any(
                "milter-reject: RCPT" in line and f"to=<{recipient}>" in line
                for line in log.splitlines()
            ), recipient
