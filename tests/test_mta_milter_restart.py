"""The milter SIGKILLed and restarted under a stream of mail through a real Postfix.

Postfix runs the shipped main.cf (milter_default_action = tempfail), the clients retry on
4xx as SMTP clients do. Every message must end up accepted once and delivered once to its
good recipient; the null-MX recipient only ever gets 556 or a 4xx; nothing bounces.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from daemon_process import MilterDaemon
from mta_postfix import PostfixInstance, shipped_main_cf
from mta_stack import MtaStack
from smtp_stream import MailStream

pytestmark = pytest.mark.mta

# This module's Postfix instance; every MTA module has its own ports in the shared namespace
# (test_mta_postfix 25-31, test_mta_policy_service 40-41, test_mta_reload_restart 46).
PORT = 45
MESSAGES = 150
CLIENTS = 4
KILLS = 2


@pytest.fixture(scope="module")
def postfix_and_milter(mta_stack: MtaStack) -> Iterator[tuple[PostfixInstance, MilterDaemon]]:
    milter = mta_stack.milter()
    postfix = PostfixInstance(
        mta_stack.netns,
        mta_stack.folder("postfix-restart"),
        next_hop=mta_stack.sink.port,
        port=PORT,
        # The shipped settings, with the milter on TCP (later lines win).
        main_cf=shipped_main_cf() + f"smtpd_milters = inet:127.0.0.1:{milter.milter_port}\n",
    )
    try:
        postfix.start()
        yield postfix, milter
    finally:
        postfix.stop()


def test_milter_sigkilled_and_restarted_under_load_loses_and_bounces_nothing(
    mta_stack: MtaStack, postfix_and_milter: tuple[PostfixInstance, MilterDaemon]
) -> None:
    postfix, milter = postfix_and_milter
    outages: list[float] = []
    # Good and null-MX recipient one each; the null-MX one only ever gets 556 or a 4xx.
    with MailStream(mta_stack, PORT, "restart", clients=CLIENTS) as stream:
        for kill in range(KILLS):
            stream.wait_for(lambda: stream.accepted >= (kill + 1) * 20, 60)  # noqa: B023
            assert milter.process is not None
            tempfailed = stream.tempfailed
            milter.process.kill()
            milter.process.wait()
            killed = time.monotonic()
            # Let the clients meet the outage, then bring the milter back on its port.
            stream.wait_for(lambda: stream.tempfailed >= tempfailed + 5, 30)  # noqa: B023
            mta_stack.start_milter(milter)
            outages.append(time.monotonic() - killed)
            if stream.wrong:
                break
        # Keep the stream flowing until MESSAGES have been sent.
        stream.finish(MESSAGES)
    assert not stream.wrong, stream.wrong[:10]

    expected = [good for index in stream.sent for good in stream.good(index)]
    ours = stream.delivered(postfix)
    print(
        f"postfix + SIGKILL x{KILLS}: {len(stream.sent)} messages, {stream.attempts} attempts, "
        f"{stream.accepted} accepted, {stream.tempfailed} temp-failed and retried "
        f"({stream.broken} sessions cut), {len(ours)} delivered; outages "
        + ", ".join(f"{seconds:.2f}s" for seconds in outages)
    )
    assert stream.accepted == len(stream.sent) >= MESSAGES
    assert stream.tempfailed >= KILLS * 5
    # Nothing lost, nothing twice, no null-MX recipient delivered.
    assert sorted(ours) == sorted(expected)
    # Nothing bounced.
    assert "<>" not in mta_stack.sink.senders()
    log = postfix.log()
    assert "status=bounced" not in log
    assert "sender non-delivery notification" not in log
