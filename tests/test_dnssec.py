"""DNSSEC settings, the trust boundary of the AD bit, and the validation probe (unit tests)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from nullmx_milter.cache import LookupCache
from nullmx_milter.config import RepliesConfig
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.dnssec import (
    DnssecMode,
    ProbeAnswer,
    ProbeQuery,
    ProbeState,
    parse_probe,
    system_nameservers,
    trust_problem,
    untrusted_nameservers,
)
from nullmx_milter.dnssec_probe import DnssecProbe, DnssecProber, DnssecStatus, ProbeSettings
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Mode, NullMxPolicy, OnDnsError, SenderCheck, Verdict
from nullmx_milter.runtime import recipient_templates

from dns_stub import wait_until
from fakes import TEST_VERSIONS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("ns:.", ProbeQuery("NS", "."), id="postfix-default"),
        pytest.param("SOA:signed.test", ProbeQuery("SOA", "signed.test."), id="relative"),
        pytest.param("dnskey:example.org.", ProbeQuery("DNSKEY", "example.org."), id="absolute"),
        pytest.param("", None, id="off"),
    ],
)
def test_probe_queries_parse(text: str, expected: ProbeQuery | None) -> None:
    assert parse_probe(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("root", "TYPE:NAME", id="no-type"),
        pytest.param("any:.", "ANY is not one of", id="unknown-type"),
        pytest.param("ns:a..b", "not a DNS name", id="empty-label"),
        pytest.param("ns: .", "TYPE:NAME", id="space"),
    ],
)
def test_bad_probe_queries_are_named(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_probe(text)


def test_loopback_addresses_are_the_only_trusted_ones() -> None:
    hosts = ["127.0.0.1", "127.0.0.53", "::1", "10.0.0.1", "192.0.2.53", "fe80::1%eth0", "x"]
    assert untrusted_nameservers(hosts) == ("10.0.0.1", "192.0.2.53", "fe80::1%eth0", "x")


def test_system_nameservers_come_from_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nsearch example\nnameserver 127.0.0.1\nnameserver 10.1.1.1\n")
    assert system_nameservers(resolv) == ("127.0.0.1", "10.1.1.1")
    assert system_nameservers(tmp_path / "missing") == ()


@pytest.mark.parametrize(
    ("mode", "configured", "trusted", "resolv", "problem"),
    [
        pytest.param(DnssecMode.OFF, ("192.0.2.1",), False, "", None, id="off-trusts-anything"),
        pytest.param(DnssecMode.REQUIRE, ("127.0.0.1",), False, "", None, id="loopback"),
        pytest.param(
            DnssecMode.REQUIRE,
            ("127.0.0.1", "192.0.2.1"),
            False,
            "",
            "not 192.0.2.1; set dns.resolver_path_trusted = true",
            id="remote",
        ),
        pytest.param(DnssecMode.REQUIRE, ("192.0.2.1",), True, "", None, id="remote-opted-in"),
        pytest.param(
            DnssecMode.REQUIRE, (), False, "nameserver 127.0.0.53\n", None, id="system-loopback"
        ),
        pytest.param(
            DnssecMode.REQUIRE, (), False, "nameserver 192.0.2.9\n", "resolv.conf", id="system"
        ),
        pytest.param(DnssecMode.REQUIRE, (), False, "", "no nameserver", id="system-none"),
    ],
)
def test_the_ad_bit_is_trusted_only_from_loopback_or_when_told(
    tmp_path: Path,
    mode: DnssecMode,
    configured: tuple[str, ...],
    trusted: bool,
    resolv: str,
    problem: str | None,
) -> None:
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(resolv)
    found = trust_problem(mode, configured, trusted, resolv_conf)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


class FakeProbeResolver:
    nameservers = ("127.0.0.1:53",)

    def __init__(self, answer: ProbeAnswer) -> None:
        self.answer = answer
        self.asked: list[ProbeQuery] = []

    def probe(self, query: ProbeQuery) -> ProbeAnswer:
        self.asked.append(query)
        return self.answer


QUERY = ProbeQuery("NS", ".")


def settings(
    answer: ProbeAnswer, mode: DnssecMode = DnssecMode.REQUIRE, query: ProbeQuery | None = QUERY
) -> ProbeSettings:
    return ProbeSettings(mode, query, 300.0, FakeProbeResolver(answer))


def state_metric(metrics: Metrics, state: ProbeState) -> float:
    value = metrics.registry.get_sample_value("nullmx_dnssec_probe_state", {"state": state.value})
    if value is None:
        raise AssertionError(f"no nullmx_dnssec_probe_state sample for {state.value}")
    return value


@pytest.mark.parametrize(
    ("answer", "state", "unhealthy", "level"),
    [
        pytest.param(
            ProbeAnswer(True, True, "NOERROR, AD set"),
            ProbeState.VALIDATING,
            False,
            "INFO",
            id="ad",
        ),
        pytest.param(
            ProbeAnswer(True, False, "NOERROR, AD not set"),
            ProbeState.NOT_VALIDATING,
            True,
            "WARNING",
            id="no-ad",
        ),
        pytest.param(
            ProbeAnswer(False, False, "SERVFAIL"), ProbeState.NO_ANSWER, False, "WARNING", id="fail"
        ),
    ],
)
def test_probe_results(
    caplog: pytest.LogCaptureFixture,
    answer: ProbeAnswer,
    state: ProbeState,
    unhealthy: bool,
    level: str,
) -> None:
    now = [100.0]
    metrics = Metrics(CollectorRegistry(), TEST_VERSIONS)
    probe = DnssecProbe(metrics, clock=lambda: now[0])
    current = settings(answer)
    assert probe.status(current).state is ProbeState.PENDING
    with caplog.at_level(logging.INFO, logger="nullmx_milter.dnssec_probe"):
        assert probe.run_once(current) is state
    now[0] += 7.0
    status = probe.status(current)
    assert (status.state, status.last_probed_age, status.detail) == (state, 7.0, answer.detail)
    assert (status.problem is not None) is unhealthy
    assert [record.levelname for record in caplog.records] == [level]
    assert state_metric(metrics, state) == 1
    assert sum(state_metric(metrics, other) for other in ProbeState) == 1
    if unhealthy:
        assert "every null MX is now accepted" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("mode", "query"),
    [
        pytest.param(DnssecMode.OFF, QUERY, id="dnssec-off"),
        pytest.param(DnssecMode.REQUIRE, None, id="probe-off"),
    ],
)
def test_no_probe_unless_required_and_configured(
    mode: DnssecMode, query: ProbeQuery | None
) -> None:
    metrics = Metrics(CollectorRegistry(), TEST_VERSIONS)
    probe = DnssecProbe(metrics)
    current = settings(ProbeAnswer(True, False, "no AD"), mode, query)
    assert probe.run_once(current) is ProbeState.OFF
    assert isinstance(current.resolver, FakeProbeResolver)
    assert current.resolver.asked == []
    assert probe.status(current).problem is None
    assert state_metric(metrics, ProbeState.OFF) == 1


def test_a_result_for_another_query_does_not_count() -> None:
    probe = DnssecProbe(Metrics(CollectorRegistry(), TEST_VERSIONS))
    probe.run_once(settings(ProbeAnswer(True, False, "no AD")))
    other = settings(ProbeAnswer(True, False, "no AD"), query=ProbeQuery("SOA", "."))
    assert probe.status(other).state is ProbeState.PENDING


def test_not_validating_is_a_problem_only_under_require() -> None:
    status = DnssecStatus(DnssecMode.REQUIRE, "ns:.", ProbeState.NOT_VALIDATING, "no AD", 1.0)
    assert status.problem is not None
    assert "every null MX is accepted" in status.problem
    for state in ProbeState:
        if state is not ProbeState.NOT_VALIDATING:
            assert DnssecStatus(DnssecMode.REQUIRE, "ns:.", state).problem is None


def test_the_prober_probes_at_start_and_when_woken() -> None:
    probe = DnssecProbe(Metrics(CollectorRegistry(), TEST_VERSIONS))
    current = settings(ProbeAnswer(True, True, "AD set"))
    resolver = current.resolver
    assert isinstance(resolver, FakeProbeResolver)
    prober = DnssecProber(probe, lambda: current).start()
    try:
        wait_until(lambda: len(resolver.asked) == 1, 5.0)
        prober.wake()
        wait_until(lambda: len(resolver.asked) == 2, 5.0)
    finally:
        prober.stop()
    assert probe.status(current).state is ProbeState.VALIDATING


class SignedSource:
    """null MX everywhere; authenticated only for signed.example."""

    timeout = 1.0

    def __init__(self) -> None:
        self.queries: list[str] = []

    def lookup(self, domain: str) -> MxLookup:
        self.queries.append(domain)
        signed = domain == "signed.example"
        return MxLookup(MxClass.NULL_MX, 60.0, "0 .", ((0, "."),), authenticated=signed)


def test_engine_counts_unauthenticated_null_mx_and_the_cache_keeps_the_flag() -> None:
    metrics = Metrics(CollectorRegistry(), TEST_VERSIONS)
    policy = NullMxPolicy(
        Mode.ENFORCE,
        OnDnsError.ACCEPT,
        SenderCheck.REJECT,
        frozenset(),
        recipient_templates(RepliesConfig()),
        dnssec=DnssecMode.REQUIRE,
    )
    source = SignedSource()
    lookups = MxLookupService(source, LookupCache(100, 0, 60, 0), DnsHealth(5, 1), metrics)
    engine = NullMxEngine(policy, lookups, metrics)
    for _ in range(2):  # the second time from the cache
        assert engine.check_recipient("<a@signed.example>").verdict is Verdict.REJECTED
        unsigned = engine.check_recipient("<a@unsigned.example>")
        assert (unsigned.verdict, unsigned.reason) == (Verdict.ACCEPTED, "null_mx_unauthenticated")
    assert engine.check_sender("<b@unsigned.example>").verdict is Verdict.ACCEPTED
    assert source.queries == ["signed.example", "unsigned.example"]

    def counted(role: str) -> float:
        value = metrics.registry.get_sample_value(
            "nullmx_null_mx_unauthenticated_total", {"role": role}
        )
        assert value is not None
        return value

    assert (counted("recipient"), counted("sender")) == (2, 1)
