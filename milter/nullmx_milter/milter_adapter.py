"""The libmilter front end: translate engine decisions into pymilter replies."""

from __future__ import annotations

import logging
import traceback

import Milter

from nullmx_milter.engine import NullMxEngine, log_decision
from nullmx_milter.metrics import Metrics
from nullmx_milter.policy import Decision, Role, Verdict

log = logging.getLogger(__name__)

_ACTIONS = {Verdict.REJECTED: Milter.REJECT, Verdict.TEMPFAILED: Milter.TEMPFAIL}


class NullMxMilter(Milter.Base):
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
        self._metrics.count_reply(reply)
        return action

    def _internal_error(self, stage: str, argument: str) -> None:
        """Log a bug on one line: the traceback may quote the attacker's text, so %a it."""
        log.error(
            "%s stage=%s internal error, address let through addr=%a traceback=%a",
            self._context(),
            stage,
            argument,
            traceback.format_exc(),
        )
        self._metrics.count_callback_error(stage)

    def envrcpt(self, to: str, *params: str) -> int:
        # The one deliberate catch-all: a bug must never reject or delay a recipient.
        try:
            return self._answer(self._engine.check_recipient(to), Role.RECIPIENT, to)
        except Exception:
            self._internal_error("envrcpt", to)
            return Milter.CONTINUE

    def data(self) -> int:
        return Milter.CONTINUE

    def close(self) -> int:
        self._metrics.connection_closed()
        return Milter.CONTINUE


class NullMxSenderMilter(NullMxMilter):
    """The same, plus the optional MAIL FROM check (550 5.7.27)."""

    def envfrom(self, mailfrom: str, *params: str) -> int:
        try:
            return self._answer(self._engine.check_sender(mailfrom), Role.SENDER, mailfrom)
        except Exception:
            self._internal_error("envfrom", mailfrom)
            return Milter.CONTINUE


def milter_class(checks_senders: bool) -> type[NullMxMilter]:
    """The class to serve with: envfrom is only negotiated when senders are checked."""
    return NullMxSenderMilter if checks_senders else NullMxMilter
