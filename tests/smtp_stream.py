"""SMTP clients streaming mail through a real MTA, retrying on 4xx as SMTP clients do.

Every message goes to good recipients and null-MX ones, interleaved, in one transaction.
Each SMTP session is recorded (when it started, when the greeting came, every reply, the
null-MX recipients' codes), so that a test can tell which config the milter applied to each
connection and check that every accepted recipient reached the next hop exactly once.
"""

from __future__ import annotations

import enum
import itertools
import re
import smtplib
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from dns_stub import wait_until
from mta_postfix import PostfixInstance
from mta_stack import MtaStack

SENDER = "sender@real.test"
# A message still not accepted after this many tries fails the stream.
MAX_ATTEMPTS = 100
RETRY_PAUSE = 0.05
BODY = b"Subject: nullmx-milter stream\r\n\r\nHello.\r\n"


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # DATA got 250
    TEMPFAILED = "tempfailed"  # a 4xx somewhere: the client retries the message
    BROKEN = "broken"  # the SMTP session failed (connection refused, cut): retried too
    WRONG = "wrong"  # a reply no correct setup gives: the stream stops


@dataclass(frozen=True)
class Session:
    """One SMTP session of a stream client: one try at one message."""

    message: int
    # time.monotonic() before connecting, and once the greeting was read: the MTA opened
    # its milter connection in between (Postfix does before it greets).
    started: float
    greeted: float | None
    outcome: Outcome
    replies: tuple[str, ...]
    # The RCPT reply codes of the null-MX recipients, in order (empty if it got no further).
    null_codes: tuple[int, ...] = ()
    # The first 4xx reply, "451 4.7.1 Service unavailable - try again later".
    tempfail: str | None = None


class _Replies:
    """The replies of one session as they come."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.tempfail: str | None = None

    def step(self, what: str, reply: tuple[int, bytes]) -> int:
        code, text = reply
        line = f"{code} {text.decode('utf-8', 'replace')}".replace("\n", " ")
        self.seen.append(f"{what}: {line[:100]}")
        if 400 <= code < 500 and self.tempfail is None:
            self.tempfail = line
        return code


def _verdict(code: int) -> Outcome:
    return Outcome.TEMPFAILED if 400 <= code < 500 else Outcome.WRONG


class MailStream:
    """`clients` threads sending messages numbered from 0 until finish(), each retried on
    4xx and on lost sessions until accepted.

    Message N goes to `{tag}N@D` for each good domain D and each null-MX domain, interleaved.
    A null-MX recipient must get one of `null_final` (556 when the milter enforces, 250 in
    dry-run) or a 4xx; all of one session's null-MX recipients get the same code (a
    connection keeps one config). A good recipient never gets a 5xx. Anything else is
    recorded in `wrong` and stops the stream.
    """

    def __init__(
        self,
        stack: MtaStack,
        port: int,
        tag: str,
        *,
        good_domains: tuple[str, ...] = ("real.test",),
        null_domains: tuple[str, ...] = ("null.test",),
        null_final: Collection[int] = (556,),
        clients: int = 4,
    ) -> None:
        self.stack = stack
        self.port = port
        self.tag = tag
        self.good_domains = good_domains
        self.null_domains = null_domains
        self.null_final = frozenset(null_final)
        self.clients = clients
        self.sessions: list[Session] = []
        self.wrong: list[str] = []
        self.sent: list[int] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._last: int | None = None
        self._abort = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []

    # The recipients.

    def good(self, message: int) -> list[str]:
        return [f"{self.tag}{message}@{domain}" for domain in self.good_domains]

    def null(self, message: int) -> list[str]:
        return [f"{self.tag}{message}@{domain}" for domain in self.null_domains]

    def recipients(self, message: int) -> list[tuple[str, bool]]:
        """(address, is null MX), good and null-MX ones taking turns."""
        pairs = itertools.zip_longest(self.good(message), self.null(message))
        return [
            (address, is_null)
            for pair in pairs
            for address, is_null in zip(pair, (False, True), strict=True)
            if address is not None
        ]

    def ours(self, addresses: list[str]) -> list[str]:
        """The addresses this stream sent to, out of everything the sink got."""
        pattern = re.compile(rf"{re.escape(self.tag)}[0-9]+@")
        return [address for address in addresses if pattern.match(address)]

    # Running.

    def __enter__(self) -> MailStream:
        self._pool = ThreadPoolExecutor(self.clients, thread_name_prefix=f"smtp-{self.tag}")
        self._futures = [self._pool.submit(self._client) for _ in range(self.clients)]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            # The test failed: stop at once instead of retrying the messages in hand.
            self._abort.set()
        self.finish(0)

    def finish(self, at_least: int) -> None:
        """Send no message numbered `at_least` or more, let each client finish the message
        in hand, and wait for them (raises what a client raised)."""
        with self._lock:
            self._last = at_least if self._last is None else min(self._last, at_least)
        for future in self._futures:
            future.result()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        """Poll until `condition()`; returns early when a client saw a wrong reply, so that
        the test fails on that rather than on a time-out."""
        wait_until(lambda: condition() or bool(self.wrong), timeout)

    # Figures.

    def count(self, *outcomes: Outcome) -> int:
        with self._lock:
            return sum(session.outcome in outcomes for session in self.sessions)

    @property
    def attempts(self) -> int:
        return len(self.sessions)

    @property
    def accepted(self) -> int:
        return self.count(Outcome.ACCEPTED)

    @property
    def tempfailed(self) -> int:
        """Tries that met a 4xx or a lost session."""
        return self.count(Outcome.TEMPFAILED, Outcome.BROKEN)

    @property
    def broken(self) -> int:
        return self.count(Outcome.BROKEN)

    def sessions_since(self, moment: float) -> list[Session]:
        with self._lock:
            return [session for session in self.sessions if session.started >= moment]

    def expected_deliveries(self) -> list[str]:
        """Every recipient an accepted message was accepted for: the good ones, and the
        null-MX ones that got 250 (dry-run)."""
        with self._lock:
            accepted = [s for s in self.sessions if s.outcome is Outcome.ACCEPTED]
        expected: list[str] = []
        for session in accepted:
            expected += self.good(session.message)
            if 250 in session.null_codes:
                expected += self.null(session.message)
        return expected

    def delivered(self, postfix: PostfixInstance, timeout: float = 60.0) -> list[str]:
        """What the sink got from this stream once everything expected arrived and the MTA's
        queue is empty (only then can no late duplicate be on its way)."""
        sink = self.stack.sink
        expected = set(self.expected_deliveries())
        sink.wait_for_recipients(lambda got: expected <= set(got), timeout)
        wait_until(lambda: "Mail queue is empty" in postfix.queue(), timeout)
        return self.ours(sink.recipients())

    # The client threads.

    def _next(self) -> int | None:
        with self._lock:
            number = next(self._numbers)
            if self.wrong or self._abort.is_set():
                return None
            if self._last is not None and number >= self._last:
                return None
            self.sent.append(number)
            return number

    def _client(self) -> None:
        for number in iter(self._next, None):
            self._send_until_accepted(number)

    def _record(self, session: Session) -> None:
        with self._lock:
            self.sessions.append(session)
            if session.outcome is Outcome.WRONG:
                self.wrong.append(f"message {session.message}: {list(session.replies)}")

    def _send_until_accepted(self, message: int) -> None:
        for _attempt in range(MAX_ATTEMPTS):
            if self.wrong or self._abort.is_set():
                return
            session = self._session(message)
            self._record(session)
            if session.outcome in (Outcome.ACCEPTED, Outcome.WRONG):
                return
            time.sleep(RETRY_PAUSE)
        with self._lock:
            self.wrong.append(f"message {message} not accepted in {MAX_ATTEMPTS} tries")

    def _session(self, message: int) -> Session:
        started = time.monotonic()
        greeted: float | None = None
        replies = _Replies()
        null_codes: list[int] = []
        try:
            with self.stack.smtp(self.port, timeout=30) as client:
                greeted = time.monotonic()
                outcome = self._transaction(client, message, replies, null_codes)
        except (smtplib.SMTPException, OSError) as error:
            replies.seen.append(f"session lost: {error!r}")
            outcome = Outcome.BROKEN
        return Session(
            message=message,
            started=started,
            greeted=greeted,
            outcome=outcome,
            replies=tuple(replies.seen),
            null_codes=tuple(null_codes),
            tempfail=replies.tempfail,
        )

    def _transaction(
        self, client: smtplib.SMTP, message: int, replies: _Replies, null_codes: list[int]
    ) -> Outcome:
        code = replies.step("EHLO", client.ehlo())
        if code == 250:
            code = replies.step("MAIL", client.mail(SENDER))
        if code != 250:
            return _verdict(code)
        good_codes: list[int] = []
        for address, is_null in self.recipients(message):
            code = replies.step(f"RCPT {address}", client.rcpt(address))
            (null_codes if is_null else good_codes).append(code)
        final_null = [code for code in null_codes if not 400 <= code < 500]
        if (
            any(code >= 500 for code in good_codes)
            or any(code not in self.null_final for code in final_null)
            or len(set(final_null)) > 1
        ):
            return Outcome.WRONG
        if any(400 <= code < 500 for code in good_codes + null_codes):
            # Retried whole, so that every recipient of an accepted message was accepted in
            # one transaction.
            replies.step("RSET", client.rset())
            return Outcome.TEMPFAILED
        try:
            code = replies.step("DATA", client.data(BODY))
        except smtplib.SMTPDataError as refused:
            # smtplib raises when DATA itself is not answered 354 (a 451 from Postfix when
            # the milter went away in the DATA stage): a reply like any other.
            text = refused.smtp_error
            code = replies.step(
                "DATA", (refused.smtp_code, text.encode() if isinstance(text, str) else text)
            )
        return Outcome.ACCEPTED if code == 250 else _verdict(code)
