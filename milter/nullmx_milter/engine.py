"""The decision engine every front end shares: parse, look up, decide, count."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nullmx_milter.address import AddressKind, parse_address
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass
from nullmx_milter.policy import NULL_MX_UNAUTHENTICATED, Decision, NullMxPolicy, Role, Verdict

log = logging.getLogger(__name__)


class NullMxEngine:
    """Check envelope addresses; thread-safe, with no knowledge of the MTA protocol."""

    def __init__(self, policy: NullMxPolicy, lookups: MxLookupService, metrics: Metrics) -> None:
        self.policy = policy
        self._lookups = lookups
        self._metrics = metrics

    def check_recipient(self, argument: str) -> Decision:
        """The decision for a RCPT TO argument."""
        decision = self._check(argument, Role.RECIPIENT)
        self._metrics.count_recipient(decision.verdict)
        return decision

    def check_sender(self, argument: str) -> Decision:
        """The decision for a MAIL FROM argument (skipped unless the sender check is on)."""
        decision = self._check(argument, Role.SENDER)
        self._metrics.count_sender(decision.verdict)
        return decision

    def _check(self, argument: str, role: Role) -> Decision:
        address = parse_address(argument)
        decision = self.policy.pre_lookup(address, role)
        if decision is None:
            lookup = self._lookups.lookup(address.domain)
            decision = self.policy.decide(address, lookup, role)
            if decision.reason == NULL_MX_UNAUTHENTICATED:
                self._metrics.count_unauthenticated_null_mx(role)
        return decision


def log_safe(text: str) -> str:
    """`text` as is when it is printable ASCII (a queue id), else escaped like %a."""
    return text if text.isascii() and text.isprintable() else ascii(text)


def log_decision(
    decision: Decision, role: Role, argument: str, context: str | Callable[[], str]
) -> None:
    """One key=value line per decision: DEBUG for plain accepts, INFO for anything notable.

    `context` (connection and queue id) may be a function, called only when the line is
    logged: the milter's costs a getsymval on the per-recipient path. The raw argument is
    attacker-controlled: %a escapes CR, LF and non-ASCII.
    """
    lookup = decision.lookup
    notable = (
        decision.verdict not in (Verdict.ACCEPTED, Verdict.SKIPPED)
        or decision.address.kind is AddressKind.INVALID
        or (
            lookup is not None
            and (lookup.mx_class in (MxClass.MIXED, MxClass.NULL_MX) or lookup.mx_class.is_failure)
        )
    )
    level = logging.INFO if notable else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "%s role=%s verdict=%s reason=%s domain=%s mx=%a problem=%a addr=%a",
        context if isinstance(context, str) else context(),
        role.value,
        decision.verdict.value,
        decision.reason,
        decision.address.domain or "-",
        lookup.detail if lookup is not None else "",
        decision.address.problem,
        argument,
    )
