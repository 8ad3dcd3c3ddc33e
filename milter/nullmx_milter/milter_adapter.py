"""The libmilter front end: translate engine decisions into pymilter replies."""

from __future__ import annotations

import logging
import traceback

import Milter

from nullmx_milter.engine import NullMxEngine, log_decision, log_safe
from nullmx_milter.metrics import Metrics
from nullmx_milter.policy import Decision, Role, Verdict

log = logging.getLogger(__name__)

_ACTIONS = {Verdict.REJECTED: Milter.REJECT, Verdict.TEMPFAILED: Milter.TEMPFAIL}
_STAGES = {Role.RECIPIENT: "envrcpt", Role.SENDER: "envfrom"}


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
        # The MTA's queue id, but it still must not be able to split a log line.
        return f"conn={self._connection} qid={log_safe(queue_id or '-')}"

    def _check(self, role: Role, argument: str) -> int:
        # The one deliberate catch-all: a bug must never reject or delay an address.
        try:
            if role is Role.SENDER:
                decision = self._engine.check_sender(argument)
            else:
                decision = self._engine.check_recipient(argument)
            return self._answer(decision, role, argument)
        except Exception:  # noqa: BLE001 - the deliberate catch-all above
            # One line: the traceback may quote the attacker's argument, so %a escapes it.
            log.error(
                "%s role=%s internal error, let through addr=%a traceback=%a",
                self._context(),
                role.value,
                argument,
                traceback.format_exc(),
            )
            self._metrics.count_callback_error(_STAGES[role])
            return Milter.CONTINUE

    def _answer(self, decision: Decision, role: Role, argument: str) -> int:
        log_decision(decision, role, argument, self._context)
        reply = decision.reply
        action = _ACTIONS.get(decision.verdict)
        if reply is None or action is None:
            return Milter.CONTINUE
        self.setreply(reply.code, reply.enhanced, *reply.lines)
        self._metrics.count_reply(reply, "milter")
        return action

    def envrcpt(self, to: str, *params: str) -> int:
        return self._check(Role.RECIPIENT, to)

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
        return self._check(Role.SENDER, mailfrom)


def milter_class(checks_senders: bool) -> type[NullMxMilterBase]:
    """The class to serve with: envfrom is only negotiated when senders are checked."""
    return NullMxSenderMilter if checks_senders else NullMxMilter
