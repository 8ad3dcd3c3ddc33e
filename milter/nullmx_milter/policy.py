"""Decide what to answer for one envelope address, given what DNS said about its domain."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from nullmx_milter.address import AddressKind, ParsedAddress
from nullmx_milter.dnssec import DnssecMode
from nullmx_milter.header_check import HeaderFromCheck
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.reply import Reply, ReplyTemplate
from nullmx_milter.suggest import Suggestion, suggested_address

# The reason of a null MX let through because DNSSEC did not authenticate it.
NULL_MX_UNAUTHENTICATED = "null_mx_unauthenticated"


class Role(enum.Enum):
    """Which envelope address is checked."""

    RECIPIENT = "recipient"
    SENDER = "sender"


class Verdict(enum.Enum):
    """What happened to an address; the value is the metric label."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TEMPFAILED = "tempfailed"
    WOULD_REJECT = "would_reject"
    # Dry-run with on_dns_error = "tempfail": a DNS failure that enforcing would answer 451.
    WOULD_TEMPFAIL = "would_tempfail"
    SKIPPED = "skipped"


class Mode(enum.Enum):
    """`enforce` rejects; `dry-run` changes no answer: it only logs and counts what it would
    have rejected (would_reject) or temp-failed (would_tempfail)."""

    ENFORCE = "enforce"
    DRY_RUN = "dry-run"


class SenderCheck(enum.Enum):
    """Whether MAIL FROM domains are checked too (RFC 7505 §4.1 makes it optional)."""

    OFF = "off"
    REJECT = "reject"
    DRY_RUN = "dry-run"


class OnDnsError(enum.Enum):
    """What a DNS failure means for the address: let it through, or ask to retry later."""

    ACCEPT = "accept"
    TEMPFAIL = "tempfail"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one address, the reply to send (if any) and why."""

    verdict: Verdict
    reason: str
    address: ParsedAddress
    reply: Reply | None = None
    lookup: MxLookup | None = None
    # "Did you mean": asked for null-MX recipients only (rejected or, in dry-run, not).
    suggestion: Suggestion | None = None

    @property
    def suggested(self) -> str:
        """The address with the suggested domain, or "" when none was offered."""
        suggestion = self.suggestion
        if suggestion is None or not suggestion.domain:
            return ""
        return suggested_address(self.address.mailbox, suggestion.domain)


@dataclass(frozen=True, slots=True)
class ReplyTemplates:
    """The annotated replies: 556 5.1.10, 550 5.7.27 and 451 4.4.3."""

    recipient: ReplyTemplate
    sender: ReplyTemplate
    tempfail: ReplyTemplate


class NullMxPolicy:
    """RFC 7505 policy: reject null-MX domains, never reject on doubt.

    Under `dnssec = DnssecMode.REQUIRE` a null MX counts only when DNSSEC authenticated it
    (`MxLookup.authenticated`); an unauthenticated one is accepted with its own reason.
    """

    def __init__(
        self,
        mode: Mode,
        on_dns_error: OnDnsError,
        sender_check: SenderCheck,
        allowlist: frozenset[str],
        templates: ReplyTemplates,
        *,
        dnssec: DnssecMode = DnssecMode.OFF,
        suggest: Callable[[str], Suggestion] | None = None,
        header_from: HeaderFromCheck = HeaderFromCheck.OFF,
        header_from_template: ReplyTemplate | None = None,
    ) -> None:
        self._enforce = {
            Role.RECIPIENT: mode is Mode.ENFORCE,
            Role.SENDER: mode is Mode.ENFORCE and sender_check is SenderCheck.REJECT,
        }
        self._tempfail_on_error = on_dns_error is OnDnsError.TEMPFAIL
        self.checks_senders = sender_check is not SenderCheck.OFF
        self._allowlist = allowlist
        self._templates = {Role.RECIPIENT: templates.recipient, Role.SENDER: templates.sender}
        self._tempfail = templates.tempfail
        self._require_authenticated = dnssec is DnssecMode.REQUIRE
        # Called with a domain proved to receive no mail, on the reject path only.
        self._suggest = suggest
        self.header_from = header_from
        self.header_from_template = header_from_template or templates.sender

    def is_allowlisted(self, domain: str) -> bool:
        """Whether `domain` or a parent domain is on the allowlist."""
        allowlist = self._allowlist
        if not allowlist:
            return False
        if domain in allowlist:
            return True
        dot = domain.find(".")
        while dot >= 0:
            domain = domain[dot + 1 :]
            if domain in allowlist:
                return True
            dot = domain.find(".")
        return False

    def pre_lookup(self, address: ParsedAddress, role: Role) -> Decision | None:
        """The decision that needs no DNS, or None when the domain must be looked up."""
        if role is Role.SENDER and not self.checks_senders:
            return Decision(Verdict.SKIPPED, "sender_check_off", address)
        if address.kind is not AddressKind.DOMAIN:
            return Decision(Verdict.SKIPPED, address.kind.value, address)
        if self.is_allowlisted(address.domain):
            return Decision(Verdict.ACCEPTED, "allowlisted", address)
        return None

    def decide(self, address: ParsedAddress, lookup: MxLookup, role: Role) -> Decision:
        """The decision for a looked-up domain."""
        mx_class = lookup.mx_class
        if mx_class is MxClass.NULL_MX:
            if self._require_authenticated and not lookup.authenticated:
                return Decision(Verdict.ACCEPTED, NULL_MX_UNAUTHENTICATED, address, lookup=lookup)
            suggestion = None
            if role is Role.RECIPIENT and self._suggest is not None:
                suggestion = self._suggest(address.domain)
            if not self._enforce[role]:
                return Decision(
                    Verdict.WOULD_REJECT, "null_mx", address, lookup=lookup, suggestion=suggestion
                )
            suggested = (
                suggested_address(address.mailbox, suggestion.domain)
                if suggestion is not None and suggestion.domain
                else ""
            )
            reply = self._templates[role].render(address.mailbox, address.domain, suggested)
            return Decision(
                Verdict.REJECTED, "null_mx", address, reply, lookup, suggestion=suggestion
            )
        if mx_class.is_failure and self._tempfail_on_error:
            if not self._enforce[role]:
                return Decision(Verdict.WOULD_TEMPFAIL, mx_class.value, address, lookup=lookup)
            reply = self._tempfail.render(address.mailbox, address.domain)
            return Decision(Verdict.TEMPFAILED, mx_class.value, address, reply, lookup)
        return Decision(Verdict.ACCEPTED, mx_class.value, address, lookup=lookup)
