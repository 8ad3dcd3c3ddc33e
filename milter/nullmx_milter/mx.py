"""Classify what DNS said about a domain's MX records (RFC 7505, RFC 5321 §5.1)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class MxClass(enum.Enum):
    """The outcome of an MX lookup; the value is the metric label."""

    NULL_MX = "null_mx"
    MX = "mx"
    MIXED = "mixed"
    IMPLICIT = "implicit"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"
    ERROR = "error"

    @property
    def is_failure(self) -> bool:
        """True when DNS gave no usable answer (the sender's mail may still be deliverable)."""
        return self in _FAILURES


_FAILURES = frozenset({MxClass.SERVFAIL, MxClass.TIMEOUT, MxClass.ERROR})


@dataclass(frozen=True, slots=True)
class MxLookup:
    """What one lookup found: its class, how long it may be cached, and a detail for humans.

    `exchanges` lists (preference, exchange) as DNS returned them, "." for the root.
    `canonical_name` is where a CNAME chain led, "" when the domain had no CNAME.
    `authenticated` is True when every answer on the way (each CNAME step and the MX
    answer) came from the resolver with the AD bit set: DNSSEC-validated (docs/security.md,
    "DNSSEC").
    """

    mx_class: MxClass
    ttl: float
    detail: str = ""
    exchanges: tuple[tuple[int, str], ...] = ()
    canonical_name: str = ""
    authenticated: bool = False


def classify_exchanges(exchanges: Iterable[str]) -> MxClass:
    """Classify a non-empty MX set by its exchange names ("." is the root, i.e. null MX).

    All "." (whatever the preference) is a null MX; "." beside a real exchange is
    MIXED, which RFC 7505 forbids but which is still deliverable through the real one.
    """
    null = real = False
    for exchange in exchanges:
        if exchange == ".":
            null = True
        else:
            real = True
    if null and real:
        return MxClass.MIXED
    if null:
        return MxClass.NULL_MX
    if real:
        return MxClass.MX
    return MxClass.IMPLICIT
