"""The decision engine every front end shares: parse, look up, decide, count."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from nullmx_milter.address import AddressKind, parse_address
from nullmx_milter.domain_stats import DomainStats
from nullmx_milter.header_check import HeaderDecision, HeaderVerdict, check_header_from
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import NULL_MX_UNAUTHENTICATED, Decision, NullMxPolicy, Role, Verdict

log = logging.getLogger(__name__)


class NullMxEngine:
    """Check envelope addresses; thread-safe, with no knowledge of the MTA protocol."""

    def __init__(
        self,
        policy: NullMxPolicy,
        lookups: MxLookupService,
        metrics: Metrics,
        *,
        domains: DomainStats | None = None,
    ) -> None:
        self.policy = policy
        self._lookups = lookups
        self._metrics = metrics
        # Per-domain tallies shared by every runtime (they outlive reloads).
        self._domains = domains

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
            self._tally(decision, lookup, role)
        return decision

    def _tally(self, decision: Decision, lookup: MxLookup, role: Role) -> None:
        """Feed the per-domain tallies; on the accept path, one counter update at most."""
        domains = self._domains
        if domains is None:
            return
        mx_class = lookup.mx_class
        if mx_class is MxClass.MX:
            if role is Role.RECIPIENT and decision.verdict is Verdict.ACCEPTED:
                domains.learned.record(decision.address.domain)
        elif decision.verdict in (Verdict.REJECTED, Verdict.WOULD_REJECT):
            domains.rejected.add(decision.address.domain)
            if decision.suggestion is not None:
                self._metrics.count_suggestion(decision.suggestion.outcome)
        elif mx_class.is_failure:
            domains.dns_failing.add(decision.address.domain)

    def check_header_from(self, values: Sequence[str]) -> HeaderDecision:
        """The decision for a message's From header fields (RFC 7505 §4.1)."""
        policy = self.policy
        decision = check_header_from(
            values,
            mode=policy.header_from,
            lookup=self._lookups.lookup,
            is_allowlisted=policy.is_allowlisted,
            template=policy.header_from_template,
        )
        self._metrics.count_header_from(decision.verdict)
        if self._domains is not None and decision.verdict in (
            HeaderVerdict.REJECTED,
            HeaderVerdict.WOULD_REJECT,
        ):
            for domain in dict.fromkeys(address.domain for address in decision.addresses):
                self._domains.rejected.add(domain)
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
    suggestion = decision.suggestion
    log.log(
        level,
        "%s role=%s verdict=%s reason=%s domain=%s mx=%a problem=%a addr=%a%s",
        context if isinstance(context, str) else context(),
        role.value,
        decision.verdict.value,
        decision.reason,
        decision.address.domain or "-",
        lookup.detail if lookup is not None else "",
        decision.address.problem,
        argument,
        ""
        if suggestion is None
        else f" suggest={suggestion.outcome.value}:{suggestion.domain or '-'}",
    )


def log_header_decision(decision: HeaderDecision, context: str | Callable[[], str]) -> None:
    """One line per checked From header: DEBUG when accepted, INFO otherwise."""
    level = logging.DEBUG if decision.verdict is HeaderVerdict.ACCEPTED else logging.INFO
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "%s role=header_from verdict=%s reason=%s from=%s",
        context if isinstance(context, str) else context(),
        decision.verdict.value,
        decision.reason,
        ",".join(address.domain for address in decision.addresses) or "-",
    )
