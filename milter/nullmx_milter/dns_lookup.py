"""Look up a domain's MX records and classify the answer; DNS exceptions end here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.resolver

from nullmx_milter.dns_fast import FastMxQuery
from nullmx_milter.dnssec import ProbeAnswer, ProbeQuery
from nullmx_milter.endpoints import Nameserver
from nullmx_milter.mx import MxClass, MxLookup, classify_exchanges

_MAX_CNAME_HOPS = 8
_EDNS_PAYLOAD = 1232
# RFC 2308 §5: without an SOA a negative answer should not be cached for long.
_TTL_WITHOUT_SOA = 0.0
# Distinct values an interner shares before it starts afresh (bounds its memory).
_INTERN_LIMIT = 10_000

HashableT = TypeVar("HashableT", str, float, tuple[tuple[int, str], ...], MxLookup)


class _Interner(Generic[HashableT]):
    """One shared object per distinct value: many domains have the same MX set (their
    provider's), TTL and detail text, and the cache holds up to 100k lookups."""

    def __init__(self) -> None:
        self._values: dict[HashableT, HashableT] = {}

    def __call__(self, value: HashableT) -> HashableT:
        shared = self._values.get(value)
        if shared is not None:
            return shared
        if len(self._values) >= _INTERN_LIMIT:
            self._values.clear()
        self._values[value] = value
        return value


def _negative_ttl(response: dns.message.Message | None) -> float:
    # Checked here: dnspython 2.9 gives a negative answer without SOA a TTL of 300.
    if not isinstance(response, dns.message.QueryMessage) or not any(
        rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority
    ):
        return _TTL_WITHOUT_SOA
    try:
        return float(response.resolve_chaining().minimum_ttl)
    except (dns.exception.DNSException, ValueError):
        return _TTL_WITHOUT_SOA


def _describe_errors(error: dns.resolver.NoNameservers) -> tuple[MxClass, str]:
    """SERVFAIL when every server said SERVFAIL; any other failure is ERROR."""
    errors = error.kwargs.get("errors", [])
    reasons = [f"{server} {problem}" for server, _tcp, _port, problem, _response in errors]
    all_servfail = bool(errors) and all(problem == "SERVFAIL" for *_, problem, _r in errors)
    mx_class = MxClass.SERVFAIL if all_servfail else MxClass.ERROR
    return mx_class, "; ".join(reasons) or "no nameserver answered"


@dataclass(frozen=True, slots=True)
class _Cname:
    """One step of a CNAME chain to follow: its target, and whether its answer had AD."""

    target: dns.name.Name
    authenticated: bool


class MxResolver:
    """Query MX records through dnspython, always for absolute names.

    With `dnssec`, every query (each CNAME step too) sets the DO and AD bits, and a lookup
    is `authenticated` only when every answer on the way came back with AD.
    """

    def __init__(
        self,
        nameservers: Sequence[Nameserver],
        timeout: float,
        fast_path: bool = True,
        dnssec: bool = False,
    ) -> None:
        resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            # Ports first: dnspython >= 2.4 applies them when nameservers is set, 2.3 (Debian 12)
            # at query time; Do53Nameserver objects would need 2.4. One port per address.
            resolver.nameserver_ports = {server.host: server.port for server in nameservers}
            resolver.nameservers = [server.host for server in nameservers]
        resolver.lifetime = timeout
        # Leave every server in the list a fair share of the lookup's budget.
        resolver.timeout = timeout / max(1, len(resolver.nameservers))
        resolver.retry_servfail = False
        resolver.cache = None
        if dnssec:
            resolver.use_edns(0, dns.flags.DO, _EDNS_PAYLOAD)
            # Setting the flags replaces them all: RD must be named again.
            resolver.flags = dns.flags.RD | dns.flags.AD
        else:
            resolver.use_edns(0, 0, _EDNS_PAYLOAD)
        self._resolver = resolver
        self.timeout = timeout
        self.dnssec = dnssec
        self._fast = _fast_query(resolver, dnssec) if fast_path else None
        self._ttls: _Interner[float] = _Interner()
        self._details: _Interner[str] = _Interner()
        self._exchange_sets: _Interner[tuple[tuple[int, str], ...]] = _Interner()
        self._lookups: _Interner[MxLookup] = _Interner()

    @property
    def nameservers(self) -> tuple[str, ...]:
        """The servers queried (host:port), for logs and status reports."""
        ports = self._resolver.nameserver_ports
        described = []
        for server in self._resolver.nameservers:
            if isinstance(server, str):  # dnspython 2.3
                described.append(str(Nameserver(server, ports.get(server, self._resolver.port))))
                continue
            address = getattr(server, "address", None)
            port = getattr(server, "port", None)
            if isinstance(address, str) and isinstance(port, int):
                described.append(str(Nameserver(address, port)))
            else:
                described.append(str(server))
        return tuple(described)

    def lookup(self, domain: str) -> MxLookup:
        """Classify `domain` (lower-case A-label, no trailing dot). Never raises for DNS trouble."""
        deadline = time.monotonic() + self.timeout
        if self._fast is not None:
            # Half the first server's share: if this try goes unanswered, dnspython retries.
            answer = self._fast.query(domain, self._resolver.timeout / 2)
            if answer is not None:
                exchanges, ttl, authenticated = answer
                lookup = _mx_lookup(exchanges, float(ttl), "", authenticated)
                return self._compact(lookup, domain)
        try:
            qname = dns.name.from_text(domain)
        except dns.exception.DNSException as error:
            return MxLookup(MxClass.ERROR, 0.0, f"bad name: {error}")
        chain_authenticated = True
        for _hop in range(_MAX_CNAME_HOPS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return MxLookup(MxClass.TIMEOUT, 0.0, "lookup budget spent following CNAMEs")
            result = self._query(qname, remaining)
            if isinstance(result, MxLookup):
                if result.authenticated and not chain_authenticated:
                    # A CNAME step on the way was not validated: neither is where it led.
                    result = replace(result, authenticated=False)
                return self._compact(result, domain)
            chain_authenticated = chain_authenticated and result.authenticated
            qname = result.target
        return MxLookup(MxClass.ERROR, 0.0, "CNAME chain too long")

    def probe(self, query: ProbeQuery) -> ProbeAnswer:
        """Ask the configured servers `query` (DO and AD set with `dnssec`, as for MX) and
        report whether the answer came back validated. Never raises for DNS trouble."""
        try:
            answer = self._resolver.resolve(
                query.name, query.rdtype, search=False, raise_on_no_answer=False
            )
            response: dns.message.Message | None = answer.response
        except dns.resolver.NXDOMAIN as error:
            responses: dict[dns.name.Name, dns.message.Message] = error.kwargs["responses"]
            response = next(iter(responses.values()), None)
        except dns.resolver.NoNameservers as error:
            return ProbeAnswer(False, False, _describe_errors(error)[1])
        except dns.exception.DNSException as error:
            return ProbeAnswer(False, False, f"{type(error).__name__}: {error}")
        if response is None:
            return ProbeAnswer(False, False, "no response")
        authenticated = bool(response.flags & dns.flags.AD)
        return ProbeAnswer(
            True,
            authenticated,
            f"{dns.rcode.to_text(response.rcode())}, AD {'set' if authenticated else 'not set'}",
        )

    def _compact(self, lookup: MxLookup, domain: str) -> MxLookup:
        """The same lookup made of shared parts (canonical_name "" without a CNAME), so
        that domains with the same answer (a provider's MX set, a null MX) share one."""
        canonical = lookup.canonical_name
        return self._lookups(
            MxLookup(
                lookup.mx_class,
                self._ttls(lookup.ttl),
                self._details(lookup.detail),
                self._exchange_sets(lookup.exchanges),
                "" if canonical == domain else canonical,
                lookup.authenticated,
            )
        )

    def _query(self, qname: dns.name.Name, lifetime: float) -> MxLookup | _Cname:
        """One resolver call; a _Cname means "follow this CNAME target"."""
        try:
            answer = self._resolver.resolve(
                qname,
                dns.rdatatype.MX,
                search=False,
                raise_on_no_answer=False,
                lifetime=lifetime,
            )
        except dns.resolver.NXDOMAIN as error:
            responses: dict[dns.name.Name, dns.message.Message] = error.kwargs["responses"]
            ttl = _negative_ttl(next(iter(responses.values()), None))
            return MxLookup(MxClass.NXDOMAIN, ttl, "NXDOMAIN")
        except dns.resolver.LifetimeTimeout as error:
            return MxLookup(MxClass.TIMEOUT, 0.0, str(error))
        except dns.resolver.NoNameservers as error:
            mx_class, detail = _describe_errors(error)
            return MxLookup(mx_class, 0.0, detail)
        except dns.exception.DNSException as error:
            return MxLookup(MxClass.ERROR, 0.0, f"{type(error).__name__}: {error}")
        canonical = answer.canonical_name
        rrset = answer.rrset
        authenticated = bool(answer.response.flags & dns.flags.AD)
        if rrset is None:
            if canonical != qname and not _speaks_for(answer.response, canonical):
                # An authoritative-only server gave the CNAME, not the target's data.
                return _Cname(canonical, authenticated)
            return MxLookup(
                MxClass.IMPLICIT,
                float(answer.chaining_result.minimum_ttl),
                "no MX records (implicit MX)",
                canonical_name=canonical.to_text(omit_final_dot=True),
                authenticated=authenticated,
            )
        exchanges = tuple(
            (mx.preference, mx.exchange.to_text())
            for mx in rrset
            if isinstance(mx, dns.rdtypes.ANY.MX.MX)
        )
        return _mx_lookup(
            exchanges,
            float(answer.chaining_result.minimum_ttl),
            canonical.to_text(omit_final_dot=True),
            authenticated,
        )


def _fast_query(resolver: dns.resolver.Resolver, dnssec: bool) -> FastMxQuery | None:
    """The lean path to the first server (dnspython 2.3 lists addresses, later ones objects)."""
    if not resolver.nameservers:
        return None
    first = resolver.nameservers[0]
    if isinstance(first, str):
        return FastMxQuery(first, resolver.nameserver_ports.get(first, resolver.port), dnssec)
    address = getattr(first, "address", None)
    port = getattr(first, "port", None)
    if isinstance(address, str) and isinstance(port, int):
        return FastMxQuery(address, port, dnssec)
    return None


def _mx_lookup(
    exchanges: tuple[tuple[int, str], ...], ttl: float, canonical_name: str, authenticated: bool
) -> MxLookup:
    """The lookup for an MX answer (both query paths build it here)."""
    return MxLookup(
        classify_exchanges(exchange for _pref, exchange in exchanges),
        ttl,
        " ".join(f"{pref} {exchange}" for pref, exchange in exchanges),
        exchanges=exchanges,
        canonical_name=canonical_name,
        authenticated=authenticated,
    )


def _speaks_for(response: dns.message.Message, name: dns.name.Name) -> bool:
    """Whether a NODATA response covers `name`: an SOA of a zone that contains it."""
    return any(
        rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name)
        for rrset in response.authority
    )
