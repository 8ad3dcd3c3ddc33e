"""DNSSEC settings as values: the mode, the probe's query, whom the AD bit may come from."""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name

RESOLV_CONF = Path("/etc/resolv.conf")
# Postfix's dnssec_probe default: the root's NS set, which a validating resolver holding the
# root trust anchor answers with AD.
DEFAULT_PROBE = "ns:."
_PROBE = re.compile(r"([A-Za-z][A-Za-z0-9]{0,15}):(\S+)\Z")
_PROBE_TYPES = ("A", "AAAA", "DNSKEY", "MX", "NS", "SOA", "TXT")


class DnssecMode(enum.Enum):
    """`off` trusts any null MX; `require` rejects only on a DNSSEC-authenticated one."""

    OFF = "off"
    REQUIRE = "require"


class ProbeState(enum.Enum):
    """What the validation probe found; the value is the metric label."""

    OFF = "off"  # dns.dnssec = "off", or no probe query configured
    PENDING = "pending"  # not probed yet
    VALIDATING = "validating"  # the answer came with AD
    NOT_VALIDATING = "not_validating"  # an answer without AD: the resolver does not validate
    NO_ANSWER = "no_answer"  # SERVFAIL, timeout or another failure: unknown


@dataclass(frozen=True, slots=True)
class ProbeQuery:
    """The query whose answer must come back with AD: a type and an absolute name."""

    rdtype: str
    name: str

    def __str__(self) -> str:
        return f"{self.rdtype.lower()}:{self.name}"


def parse_probe(text: str) -> ProbeQuery | None:
    """`TYPE:NAME` (Postfix's dnssec_probe syntax, e.g. "ns:."), or None for ""."""
    if not text:
        return None
    match = _PROBE.match(text)
    if match is None:
        raise ValueError(f'must be "TYPE:NAME" (such as "{DEFAULT_PROBE}") or "", not {text!r}')
    rdtype, name = match.group(1).upper(), match.group(2)
    if rdtype not in _PROBE_TYPES:
        raise ValueError(f"query type {rdtype} is not one of {', '.join(_PROBE_TYPES)}")
    try:
        absolute = dns.name.from_text(name).to_text()
    except dns.exception.DNSException as error:
        raise ValueError(f"{name!r} is not a DNS name: {error}") from None
    if not absolute.isascii():
        raise ValueError(f"{name!r} is not a DNS name in A-label form")
    return ProbeQuery(rdtype, absolute)


def system_nameservers(resolv_conf: Path = RESOLV_CONF) -> tuple[str, ...]:
    """The `nameserver` addresses in resolv.conf (what dnspython uses when none is configured)."""
    try:
        text = resolv_conf.read_text(errors="replace")
    except OSError:
        return ()
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return tuple(found)


def untrusted_nameservers(hosts: Iterable[str]) -> tuple[str, ...]:
    """The hosts that are not loopback addresses: the path to them can be tampered with."""
    untrusted = []
    for host in hosts:
        try:
            loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            untrusted.append(host)
    return tuple(untrusted)


def trust_problem(
    mode: DnssecMode,
    configured: tuple[str, ...],
    path_trusted: bool,
    resolv_conf: Path = RESOLV_CONF,
) -> str | None:
    """Why the AD bit cannot be trusted from these nameservers, or None.

    Under `require` the resolver's AD bit decides whether a 556 goes out, so it must come
    from a validating resolver on this host (a loopback address), unless the operator says
    the path to a remote one is trusted (dns.resolver_path_trusted).
    """
    if mode is DnssecMode.OFF or path_trusted:
        return None
    hosts = configured or system_nameservers(resolv_conf)
    if not hosts:
        return f"no nameserver configured and none in {resolv_conf}"
    untrusted = untrusted_nameservers(hosts)
    if not untrusted:
        return None
    where = "" if configured else f" (from {resolv_conf})"
    return (
        f'with dns.dnssec = "require" every nameserver must be a loopback address (a local '
        f"validating resolver), not {', '.join(untrusted)}{where}; set dns.resolver_path_trusted "
        "= true only if the path to that resolver cannot be tampered with"
    )


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """What the probe query got: an answer at all (NOERROR or NXDOMAIN), with AD or not."""

    answered: bool
    authenticated: bool
    detail: str


DEFAULT_PROBE_QUERY = ProbeQuery("NS", ".")
