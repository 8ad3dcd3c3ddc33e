"""RFC 7505 §4.1 for the RFC5322.From header: reject when every From domain has a null MX."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nullmx_milter.address import AddressKind, ParsedAddress
from nullmx_milter.header_from import from_addresses
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.reply import Reply, ReplyTemplate

# Distinct From domains looked up per message at most; a From with more is not checked.
MAX_LOOKUPS = 8


class HeaderFromCheck(enum.Enum):
    """`[policy] header_from_null_mx`: off (no header callbacks at all), reject, dry-run."""

    OFF = "off"
    REJECT = "reject"
    DRY_RUN = "dry-run"


class HeaderVerdict(enum.Enum):
    """What happened to a message's From; the value is the metric label."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WOULD_REJECT = "would_reject"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderDecision:
    """The verdict on a message's From fields, the reply (if rejected) and why."""

    verdict: HeaderVerdict
    reason: str
    addresses: tuple[ParsedAddress, ...] = ()
    reply: Reply | None = None


def check_header_from(
    values: Iterable[str],
    *,
    mode: HeaderFromCheck,
    lookup: Callable[[str], MxLookup],
    is_allowlisted: Callable[[str], bool],
    template: ReplyTemplate,
) -> HeaderDecision:
    """Reject only when the From fields parse and every address's domain has a null MX.

    Anything less certain lets the message through: no From, an unparseable one, an
    address literal, an allowlisted domain, a domain that receives mail, a DNS failure.
    """
    if mode is HeaderFromCheck.OFF:
        return HeaderDecision(verdict=HeaderVerdict.SKIPPED, reason="header_from_check_off")
    addresses = from_addresses(values)
    if addresses is None:
        return HeaderDecision(verdict=HeaderVerdict.SKIPPED, reason="no_parseable_from")
    if any(address.kind is not AddressKind.DOMAIN for address in addresses):
        return HeaderDecision(
            verdict=HeaderVerdict.ACCEPTED, reason="address_literal", addresses=addresses
        )
    domains = list(dict.fromkeys(address.domain for address in addresses))
    if len(domains) > MAX_LOOKUPS:
        return HeaderDecision(
            verdict=HeaderVerdict.SKIPPED, reason="too_many_domains", addresses=addresses
        )
    if any(is_allowlisted(domain) for domain in domains):
        return HeaderDecision(
            verdict=HeaderVerdict.ACCEPTED, reason="allowlisted", addresses=addresses
        )
    for domain in domains:
        mx_class = lookup(domain).mx_class
        if mx_class is not MxClass.NULL_MX:
            return HeaderDecision(
                verdict=HeaderVerdict.ACCEPTED, reason=mx_class.value, addresses=addresses
            )
    if mode is HeaderFromCheck.DRY_RUN:
        return HeaderDecision(
            verdict=HeaderVerdict.WOULD_REJECT, reason="null_mx", addresses=addresses
        )
    first = addresses[0]
    return HeaderDecision(
        verdict=HeaderVerdict.REJECTED,
        reason="null_mx",
        addresses=addresses,
        reply=template.render(first.mailbox, first.domain),
    )
