"""MX lookups with DNSSEC asked for, against a signing Knot behind a validating unbound."""

from __future__ import annotations

import dns.name
import pytest

from nullmx_milter.dns_fast import FastMxQuery
from nullmx_milter.dns_lookup import MxResolver, _Cname
from nullmx_milter.dnssec import parse_probe
from nullmx_milter.endpoints import parse_nameserver
from nullmx_milter.mx import MxClass, MxLookup

from dnssec_stack import KNOT, PLAIN, PROBE, VALIDATING, DnssecStack

integration = pytest.mark.integration

CASES = [
    pytest.param("null.signed.test", MxClass.NULL_MX, True, id="signed-null"),
    pytest.param("real.signed.test", MxClass.MX, True, id="signed-real"),
    pytest.param("cname-null.signed.test", MxClass.NULL_MX, True, id="cname-in-zone"),
    pytest.param("cname-other.signed.test", MxClass.NULL_MX, True, id="cname-signed-to-signed"),
    pytest.param("cname-insecure.signed.test", MxClass.NULL_MX, False, id="cname-to-insecure"),
    pytest.param("null.insecure.test", MxClass.NULL_MX, False, id="insecure-null"),
    pytest.param("real.insecure.test", MxClass.MX, False, id="insecure-real"),
    pytest.param("null.bogus.test", MxClass.SERVFAIL, False, id="bogus"),
]


def lookup(stack: DnssecStack, server: str, domain: str, **options: bool) -> MxLookup:
    resolver = MxResolver([parse_nameserver(server)], timeout=2.0, **options)
    with stack.entered():
        return resolver.lookup(domain)


@integration
@pytest.mark.parametrize(("domain", "mx_class", "authenticated"), CASES)
@pytest.mark.parametrize("fast_path", [True, False], ids=["lean", "dnspython"])
def test_validating_resolver(
    dnssec_stack: DnssecStack, domain: str, mx_class: MxClass, authenticated: bool, fast_path: bool
) -> None:
    found = lookup(dnssec_stack, VALIDATING, domain, dnssec=True, fast_path=fast_path)
    assert (found.mx_class, found.authenticated) == (mx_class, authenticated)


@integration
@pytest.mark.parametrize("domain", ["null.signed.test", "real.signed.test"])
def test_signed_answers_keep_the_lean_path(dnssec_stack: DnssecStack, domain: str) -> None:
    host, port = VALIDATING.split(":")
    with dnssec_stack.entered():
        answer = FastMxQuery(host, int(port), dnssec=True).query(domain, 1.0)
    assert answer is not None
    assert answer[2] is True


@integration
@pytest.mark.parametrize(
    ("server", "options"),
    [
        pytest.param(VALIDATING, {"dnssec": False}, id="validating-but-dnssec-off"),
        pytest.param(PLAIN, {"dnssec": True}, id="resolver-without-anchor"),
        pytest.param(KNOT, {"dnssec": True}, id="authoritative-server"),
    ],
)
def test_no_ad_without_validation_asked_and_done(
    dnssec_stack: DnssecStack, server: str, options: dict[str, bool]
) -> None:
    found = lookup(dnssec_stack, server, "null.signed.test", **options)
    assert (found.mx_class, found.authenticated) == (MxClass.NULL_MX, False)


@integration
def test_a_cname_step_without_ad_taints_the_answer(dnssec_stack: DnssecStack) -> None:
    # Knot gives only the CNAME for a target in another zone, so the resolver follows it
    # itself; Knot sets no AD, so neither step is authenticated.
    found = lookup(dnssec_stack, KNOT, "cname-other.signed.test", dnssec=True)
    assert found.mx_class is MxClass.NULL_MX
    assert found.canonical_name == "null.signed2.test"
    assert found.authenticated is False


@pytest.mark.parametrize(
    ("steps", "authenticated"),
    [
        pytest.param((True, True), True, id="every-step-ad"),
        pytest.param((False, True), False, id="cname-step-without-ad"),
        pytest.param((True, False), False, id="final-step-without-ad"),
        pytest.param((True, True, True), True, id="two-cnames-ad"),
        pytest.param((True, False, True), False, id="middle-step-without-ad"),
    ],
)
def test_every_cname_step_must_be_authenticated(
    monkeypatch: pytest.MonkeyPatch, steps: tuple[bool, ...], authenticated: bool
) -> None:
    answers: list[MxLookup | _Cname] = [
        _Cname(dns.name.from_text(f"hop{index}.test"), step) for index, step in enumerate(steps)
    ]
    answers[-1] = MxLookup(MxClass.NULL_MX, 300.0, "0 .", ((0, "."),), "end.test", steps[-1])
    resolver = MxResolver([parse_nameserver("127.0.0.1:9")], 1.0, fast_path=False, dnssec=True)
    monkeypatch.setattr(resolver, "_query", lambda _qname, _lifetime: answers.pop(0))
    found = resolver.lookup("start.test")
    assert not answers
    assert (found.mx_class, found.authenticated) == (MxClass.NULL_MX, authenticated)


@integration
@pytest.mark.parametrize(
    ("server", "answered", "authenticated"),
    [
        pytest.param(VALIDATING, True, True, id="validating"),
        pytest.param(PLAIN, True, False, id="resolver-without-anchor"),
        pytest.param(KNOT, True, False, id="authoritative-server"),
        pytest.param("127.0.0.1:9", False, False, id="nobody-there"),
    ],
)
def test_probe_query(
    dnssec_stack: DnssecStack, server: str, answered: bool, authenticated: bool
) -> None:
    resolver = MxResolver([parse_nameserver(server)], timeout=0.5, dnssec=True)
    query = parse_probe(PROBE)
    assert query is not None
    with dnssec_stack.entered():
        answer = resolver.probe(query)
    assert (answer.answered, answer.authenticated) == (answered, authenticated), answer.detail
