"""The libmilter front end: translate engine decisions into pymilter replies."""

from __future__ import annotations

import logging
import traceback

import Milter

from nullmx_milter.engine import NullMxEngine, log_decision, log_header_decision, log_safe
from nullmx_milter.header_check import HeaderVerdict
from nullmx_milter.metrics import Metrics
from nullmx_milter.policy import Decision, Role, Verdict

log = logging.getLogger(__name__)

_ACTIONS = {Verdict.REJECTED: Milter.REJECT, Verdict.TEMPFAILED: Milter.TEMPFAIL}
# From fields kept per message; a message with more is never rejected for its From.
MAX_FROM_FIELDS = 8
_STAGES = {Role.RECIPIENT: "envrcpt", Role.SENDER: "envfrom"}


class NullMxMilterBase(Milter.Base):
    """One instance per MTA connection; checks each RCPT TO on its own.

    Only envrcpt, data and close are overridden, so libmilter negotiates every other
    stage away. data() is answered on purpose: with the DATA stage negotiated away,
    Postfix stalls ~40 ms per message over TCP (its lone DATA-stage macro packet meets
    Nagle and a delayed ACK; docs/performance.md).
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


class _SenderCheck(NullMxMilterBase):
    """Adds the optional MAIL FROM check (550 5.7.27); never served on its own."""

    def envfrom(self, mailfrom: str, *params: str) -> int:
        return self._check(Role.SENDER, mailfrom)


class _HeaderFromCheck(NullMxMilterBase):
    """Adds the From header check (550 5.7.27 at end of headers); never served on its own.

    header() is marked noreply, so the MTA need not wait for an answer to each header.
    """

    _from_values: list[str] | None = None
    _too_many_from = False

    @Milter.noreply
    def header(self, field: str, value: str) -> int:
        if field.lower() == "from":
            values = self._from_values
            if values is None:
                values = self._from_values = []
            if len(values) < MAX_FROM_FIELDS:
                values.append(value)
            else:
                self._too_many_from = True
        return Milter.CONTINUE

    def eoh(self) -> int:
        # Beyond any real message, too many From fields are not checked (never rejected).
        values = [] if self._too_many_from else self._from_values or []
        self._from_values, self._too_many_from = None, False
        # The one deliberate catch-all of this stage: a bug must never reject a message.
        try:
            decision = self._engine.check_header_from(values)
            log_header_decision(decision, self._context)
            reply = decision.reply
            if reply is None or decision.verdict is not HeaderVerdict.REJECTED:
                return Milter.CONTINUE
            self.setreply(reply.code, reply.enhanced, *reply.lines)
            self._metrics.count_reply(reply, "milter")
            return Milter.REJECT
        except Exception:  # noqa: BLE001 - the deliberate catch-all above
            log.error(
                "%s role=header_from internal error, let through from=%a traceback=%a",
                self._context(),
                values,
                traceback.format_exc(),
            )
            self._metrics.count_callback_error("eoh")
            return Milter.CONTINUE

    def abort(self) -> int:
        self._from_values, self._too_many_from = None, False
        return Milter.CONTINUE


# pymilter caches protocol_mask() as a class attribute that subclasses would inherit,
# so the served classes are siblings, never parent and child.
class NullMxMilter(NullMxMilterBase):
    """The recipient check alone."""


class NullMxSenderMilter(_SenderCheck):
    """The recipient check plus the MAIL FROM check."""


class NullMxHeaderMilter(_HeaderFromCheck):
    """The recipient check plus the From header check."""


class NullMxSenderHeaderMilter(_SenderCheck, _HeaderFromCheck):
    """The recipient, MAIL FROM and From header checks."""


def milter_class(checks_senders: bool, checks_header_from: bool = False) -> type[NullMxMilterBase]:
    """The class to serve with: envfrom, header and eoh are negotiated only when used."""
    if checks_header_from:
        return NullMxSenderHeaderMilter if checks_senders else NullMxHeaderMilter
    return NullMxSenderMilter if checks_senders else NullMxMilter
