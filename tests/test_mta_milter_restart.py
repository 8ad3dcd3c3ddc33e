"""The milter SIGKILLed and restarted under a stream of mail through a real Postfix.

Postfix runs the shipped main.cf (milter_default_action = tempfail), the clients retry on
4xx as SMTP clients do. Every message must end up accepted once and delivered once to its
good recipient; the null-MX recipient only ever gets 556 or a 4xx; nothing bounces.
"""

from __future__ import annotations

import itertools
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from daemon_process import MilterDaemon
from dns_stub import wait_until
from mta_postfix import PostfixInstance, shipped_main_cf
from mta_stack import MtaStack

pytestmark = pytest.mark.mta

# This module's Postfix instance; every MTA module has its own ports in the shared namespace
# (test_mta_postfix 25-31, test_mta_policy_service 40-41).
PORT = 45
SENDER = "sender@real.test"
MESSAGES = 150
CLIENTS = 4
KILLS = 2
MAX_ATTEMPTS = 100


@dataclass
class Tally:
    """What the SMTP clients saw, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: int = 0
    accepted: int = 0
    tempfailed: int = 0
    broken_sessions: int = 0
    wrong: list[str] = field(default_factory=list)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def good(index: int) -> str:
    return f"restart{index}@real.test"


def null(index: int) -> str:
    return f"restart{index}@null.test"


def attempt(client: smtplib.SMTP, index: int) -> tuple[str, list[str]]:
    """One try at the message: ('accepted' | 'tempfail' | 'wrong', the replies seen)."""
    seen: list[str] = []

    def step(reply: tuple[int, bytes], what: str) -> int:
        seen.append(f"{what}: {reply[0]} {reply[1][:60]!r}")
        return reply[0]

    ehlo = step(client.ehlo(), "EHLO")
    if ehlo != 250:
        return "tempfail" if 400 <= ehlo < 500 else "wrong", seen
    mail = step(client.mail(SENDER), "MAIL")
    if mail != 250:
        return "tempfail" if 400 <= mail < 500 else "wrong", seen
    good_code = step(client.rcpt(good(index)), "RCPT good")
    null_code = step(client.rcpt(null(index)), "RCPT null")
    # Never a 5xx for the good recipient, never a 250 or another 5xx for the null-MX one.
    if good_code >= 500 or not (null_code == 556 or 400 <= null_code < 500):
        return "wrong", seen
    if good_code != 250:
        client.rset()
        return "tempfail", seen
    data = step(client.data(b"Subject: restart\r\n\r\nHello.\r\n"), "DATA")
    if data == 250:
        # Accepted: the null-MX recipient must have had its 556, not a 4xx.
        return ("accepted" if null_code == 556 else "wrong"), seen
    return "tempfail" if 400 <= data < 500 else "wrong", seen


def send_until_accepted(stack: MtaStack, index: int, tally: Tally) -> None:
    """One message, retried on any 4xx or lost session like an SMTP client would."""
    for _attempt in range(MAX_ATTEMPTS):
        if tally.wrong:
            return
        tally.add(attempts=1)
        try:
            with stack.smtp(PORT, timeout=30) as client:
                outcome, seen = attempt(client, index)
        except (smtplib.SMTPException, OSError):
            tally.add(broken_sessions=1, tempfailed=1)
            time.sleep(0.05)
            continue
        if outcome == "accepted":
            tally.add(accepted=1)
            return
        if outcome == "wrong":
            with tally.lock:
                tally.wrong.append(f"message {index}: {seen}")
            return
        tally.add(tempfailed=1)
        time.sleep(0.05)
    tally.wrong.append(f"message {index} never accepted")


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
    tally = Tally()
    outages: list[float] = []
    numbers = itertools.count()
    kills_done = threading.Event()
    sent: list[int] = []

    def client() -> None:
        # Keep the stream flowing until the kills are over and MESSAGES have been sent.
        for index in numbers:
            if (kills_done.is_set() and index >= MESSAGES) or tally.wrong:
                return
            sent.append(index)
            send_until_accepted(mta_stack, index, tally)

    # Both also end the wait when a client saw a wrong reply, so that it is what fails.
    def accepted_at_least(count: int) -> Callable[[], bool]:
        return lambda: tally.accepted >= count or bool(tally.wrong)

    def tempfailed_at_least(count: int) -> Callable[[], bool]:
        return lambda: tally.tempfailed >= count or bool(tally.wrong)

    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client) for _ in range(CLIENTS)]
        try:
            for kill in range(KILLS):
                wait_until(accepted_at_least((kill + 1) * 20), 60)
                assert milter.process is not None
                tempfailed = tally.tempfailed
                milter.process.kill()
                milter.process.wait()
                killed = time.monotonic()
                # Let the clients meet the outage, then bring the milter back on its port.
                wait_until(tempfailed_at_least(tempfailed + 5), 30)
                mta_stack.start_milter(milter)
                outages.append(time.monotonic() - killed)
                if tally.wrong:
                    break
        finally:
            kills_done.set()
        for future in clients:
            future.result()
    assert not tally.wrong, tally.wrong[:10]

    expected = {good(index) for index in sent}
    mta_stack.sink.wait_for_recipients(lambda got: expected <= set(got), 60)
    # Only an empty queue means nothing more is on its way: a late duplicate would still be.
    wait_until(lambda: "Mail queue is empty" in postfix.queue(), 60)
    delivered = mta_stack.sink.recipients()
    ours = [recipient for recipient in delivered if recipient.startswith("restart")]
    print(
        f"postfix + SIGKILL x{KILLS}: {len(sent)} messages, {tally.attempts} attempts, "
        f"{tally.accepted} accepted, {tally.tempfailed} temp-failed and retried "
        f"({tally.broken_sessions} sessions cut), {len(ours)} delivered; outages "
        + ", ".join(f"{seconds:.2f}s" for seconds in outages)
    )
    assert tally.accepted == len(sent) >= MESSAGES
    assert tally.tempfailed >= KILLS * 5
    # Nothing lost, nothing twice, no null-MX recipient delivered.
    assert sorted(ours) == sorted(expected)
    # Nothing bounced.
    assert "<>" not in mta_stack.sink.senders()
    log = postfix.log()
    assert "status=bounced" not in log
    assert "sender non-delivery notification" not in log
