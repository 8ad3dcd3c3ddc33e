"""The libmilter front end: translate engine decisions into pymilter replies."""

from __future__ import annotations

import logging

import Milter

from nullmx_milter.engine import NullMxEngine, log_decision
from nullmx_milter.metrics import Metrics
from nullmx_milter.policy import Decision, Role, Verdict

log = logging.getLogger(__name__)

_ACTIONS = {Verdict.REJECTED: Milter.REJECT, Verdict.TEMPFAILED: Milter.TEMPFAIL}


class NullMxMilterBase(Milter.Base):
    """One instance per MTA connection; checks each RCPT TO on its own.

    Only envrcpt, data and close are overridden, so libmilter negotiates every other
    stage away. data() is answered on purpose: with the DATA stage negotiated away,
    Postfix stalls ~40 ms per message over TCP (REFERENCE §3).
    """

    def __init__(self, engine: NullMxEngine, metrics: Metrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self._connection = Milter.uniqueID()
        metrics.connection_opened()

    def _context(self) -> str:
        queue_id = self.getsymval("i")
        return f"conn={self._connection} qid={queue_id or '-'}"

    def _answer(self, decision: Decision, role: Role, argument: str) -> int:
        log_decision(decision, role, argument, self._context())
        reply = decision.reply
        action = _ACTIONS.get(decision.verdict)
        if reply is None or action is None:
            return Milter.CONTINUE
        self.setreply(reply.code, reply.enhanced, *reply.lines)
        self._metrics.count_reply(reply, "milter")
        return action

    def envrcpt(self, to: str, *params: str) -> int:
        # The one deliberate catch-all: a bug must never reject or delay a recipient.
        try:
            return self._answer(self._engine.check_recipient(to), Role.RECIPIENT, to)
        except Exception:
            log.exception("%s stage=envrcpt internal error, recipient let through", self._context())
            self._metrics.count_callback_error("envrcpt")
            return Milter.CONTINUE

    def data(self) -> int:
        return Milter.CONTINUE

    def close(self) -> int:
        self._metrics.connection_closed()
        return Milter.CONTINUE


class NullMxMilter(NullMxMilterBase):
    """The recipient check alone.

    pymilter caches protocol_mask() as a class attribute that subclasses would inherit,
    so the two served classes are siblings, never parent and child.
    """


class NullMxSenderMilter(NullMxMilterBase):
    """The recipient check plus the optional MAIL FROM check (550 5.7.27)."""

    def envfrom(self, mailfrom: str, *params: str) -> int:
        try:
            return self._answer(self._engine.check_sender(mailfrom), Role.SENDER, mailfrom)
        except Exception:
            log.exception("%s stage=envfrom internal error, sender let through", self._context())
            self._metrics.count_callback_error("envfrom")
            return Milter.CONTINUE


def milter_class(checks_senders: bool) -> type[NullMxMilterBase]:
    """The class to serve with: envfrom is only negotiated when senders are checked."""
    return NullMxSenderMilter if checks_senders else NullMxMilter
