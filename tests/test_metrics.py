"""Exact metric values, read through a fresh CollectorRegistry, as the engine drives them."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import Milter
import pytest
from Milter import testctx
from prometheus_client import CollectorRegistry

from nullmx_milter.cache import LookupCache
from nullmx_milter.config import load_config
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import (
    CACHE_RESULTS,
    CALLBACK_STAGES,
    FRONTENDS,
    LATENCY_BUCKETS,
    POLICY_REQUEST_RESULTS,
    REPLY_CODES,
    Metrics,
    runtime_versions,
)
from nullmx_milter.milter_adapter import NullMxSenderMilter
from nullmx_milter.mx import MxClass
from nullmx_milter.policy import NullMxPolicy, OnDnsError, Verdict
from nullmx_milter.runtime import recipient_templates

from fakes import FakeSource

VERSIONS = runtime_versions("1.0.5", "1.0.1")

LOOKUPS = {
    "null.test": MxClass.NULL_MX,
    "real.test": MxClass.MX,
    "mixed.test": MxClass.MIXED,
    "broken.test": MxClass.SERVFAIL,
    "nowhere.test": MxClass.NXDOMAIN,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    registry: CollectorRegistry
    metrics: Metrics
    source: FakeSource
    cache: LookupCache
    engine: NullMxEngine

    def value(self, name: str, **labels: str) -> float:
        sample = self.registry.get_sample_value(name, labels)
        assert sample is not None, (name, labels)
        return sample


def make_rig(
    on_dns_error: OnDnsError = OnDnsError.ACCEPT, trip_after: int = 5, failure_ttl: float = 5.0
) -> Rig:
    registry = CollectorRegistry()
    metrics = Metrics(registry, VERSIONS)
    source = FakeSource(LOOKUPS)
    clock = Clock()
    cache = LookupCache(1000, 5.0, 3600.0, failure_ttl, clock=clock)
    health = DnsHealth(trip_after, 60.0, clock=clock)
    defaults = load_config(None).policy
    policy = NullMxPolicy(
        defaults.mode,
        on_dns_error,
        defaults.sender_null_mx,
        defaults.allowlist,
        recipient_templates(defaults.replies),
    )
    engine = NullMxEngine(policy, MxLookupService(source, cache, health, metrics), metrics)
    return Rig(registry, metrics, source, cache, engine)


def milter_session(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> testctx.TestCtx:
    """A connected milter session on the rig, so replies are counted by the front end."""
    monkeypatch.setattr(
        Milter, "factory", functools.partial(NullMxSenderMilter, rig.engine, rig.metrics)
    )
    ctx = testctx.TestCtx()
    assert ctx._connect() == Milter.CONTINUE
    return ctx


def nullmx_samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str]]]:
    return [
        (sample.name, sample.labels)
        for family in registry.collect()
        if family.name.startswith("nullmx_")
        for sample in family.samples
    ]


def test_every_label_value_is_pre_initialised_to_zero() -> None:
    rig = make_rig()
    for verdict in Verdict:
        assert rig.value("nullmx_recipients_total", verdict=verdict.value) == 0
        assert rig.value("nullmx_sender_checks_total", verdict=verdict.value) == 0
    for mx_class in MxClass:
        assert rig.value("nullmx_dns_lookups_total", result=mx_class.value) == 0
    for code, enhanced in REPLY_CODES:
        assert rig.value("nullmx_replies_total", code=code, enhanced=enhanced) == 0
        for frontend in FRONTENDS:
            labels = {"frontend": frontend, "code": code, "enhanced": enhanced}
            assert rig.value("nullmx_frontend_replies_total", **labels) == 0
    for result in POLICY_REQUEST_RESULTS:
        assert rig.value("nullmx_policy_requests_total", result=result) == 0
    for result in CACHE_RESULTS:
        assert rig.value("nullmx_cache_requests_total", result=result) == 0
    for stage in CALLBACK_STAGES:
        assert rig.value("nullmx_callback_errors_total", stage=stage) == 0
    for bound in LATENCY_BUCKETS:
        assert rig.value("nullmx_dns_lookup_seconds_bucket", le=str(bound)) == 0
    assert rig.value("nullmx_dns_lookup_seconds_count") == 0
    assert rig.value("nullmx_cache_entries") == 0
    assert rig.value("nullmx_dns_fail_fast_total") == 0
    assert rig.value("nullmx_milter_connections_total") == 0
    assert rig.value("nullmx_milter_connections_active") == 0
    assert rig.value("nullmx_build_info", **VERSIONS) == 1
    assert rig.value("process_start_time_seconds") > 0


def test_label_values_are_bounded_whatever_the_traffic() -> None:
    rig = make_rig()
    before = nullmx_samples(rig.registry)
    for index in range(200):
        rig.engine.check_recipient(f"<user{index}@domain{index}.test>")
        rig.engine.check_sender(f"<sender{index}@other{index}.test>")
    assert nullmx_samples(rig.registry) == before
    label_values = {value for _name, labels in before for value in labels.values()}
    assert not any("@" in value or ".test" in value for value in label_values)


def test_engine_counts_verdicts_lookups_cache_and_latency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = make_rig()
    ctx = milter_session(rig, monkeypatch)
    arguments = [
        "<a@null.test>",
        "<b@null.test>",
        "<c@real.test>",
        "<d@mixed.test>",
        "<e@broken.test>",
        "<f@nowhere.test>",
        "<postmaster>",
        "<g@[192.0.2.1]>",
    ]
    actions = [ctx._envrcpt(argument) for argument in arguments]
    assert actions.count(Milter.REJECT) == 2

    assert rig.source.queries == [
        "null.test",
        "real.test",
        "mixed.test",
        "broken.test",
        "nowhere.test",
    ]
    assert rig.value("nullmx_recipients_total", verdict="rejected") == 2
    assert rig.value("nullmx_recipients_total", verdict="accepted") == 4
    assert rig.value("nullmx_recipients_total", verdict="skipped") == 2
    assert rig.value("nullmx_recipients_total", verdict="tempfailed") == 0
    assert rig.value("nullmx_replies_total", code="556", enhanced="5.1.10") == 2
    assert rig.metrics.reply_counts() == {
        ("556", "5.1.10"): 2.0,
        ("550", "5.7.27"): 0.0,
        ("451", "4.4.3"): 0.0,
    }
    expected_lookups = {"null_mx": 1, "mx": 1, "mixed": 1, "servfail": 1, "nxdomain": 1}
    for mx_class in MxClass:
        value = rig.value("nullmx_dns_lookups_total", result=mx_class.value)
        assert value == expected_lookups.get(mx_class.value, 0), mx_class
    assert rig.metrics.cache_counts() == {"hit": 1.0, "miss": 5.0, "coalesced": 0.0}
    # Every lookup the engine made is timed, cache hits included; skipped ones are not.
    assert rig.value("nullmx_dns_lookup_seconds_count") == 6
    assert rig.value("nullmx_dns_lookup_seconds_bucket", le="+Inf") == 6
    assert 0 < rig.value("nullmx_dns_lookup_seconds_sum") < 1
    # All five answers are cached, the SERVFAIL for failure_ttl seconds.
    assert rig.value("nullmx_cache_entries") == 5
    assert len(rig.cache) == 5


def test_sender_checks_and_tempfail_replies_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = make_rig(on_dns_error=OnDnsError.TEMPFAIL)
    ctx = milter_session(rig, monkeypatch)
    assert ctx._envrcpt("<a@broken.test>") == Milter.TEMPFAIL
    assert ctx._envfrom("<b@null.test>") == Milter.CONTINUE
    assert rig.value("nullmx_recipients_total", verdict="tempfailed") == 1
    assert rig.value("nullmx_replies_total", code="451", enhanced="4.4.3") == 1
    labels = {"frontend": "milter", "code": "451", "enhanced": "4.4.3"}
    assert rig.value("nullmx_frontend_replies_total", **labels) == 1
    # The sample config leaves the sender check off: the sender is skipped, not looked up.
    assert rig.value("nullmx_sender_checks_total", verdict="skipped") == 1
    assert rig.source.queries == ["broken.test"]


def test_fail_fast_is_counted_and_skips_the_query() -> None:
    rig = make_rig(trip_after=2, failure_ttl=0.0)
    rig.source.answers.update({f"slow{index}.test": MxClass.TIMEOUT for index in range(5)})
    for index in range(5):
        rig.engine.check_recipient(f"<a@slow{index}.test>")
    # Two timeouts trip the breaker; the clock stands still, so no probe is due after that.
    assert rig.source.queries == ["slow0.test", "slow1.test"]
    assert rig.value("nullmx_dns_lookups_total", result="timeout") == 2
    assert rig.value("nullmx_dns_fail_fast_total") == 3
    assert rig.value("nullmx_recipients_total", verdict="accepted") == 5
    assert rig.value("nullmx_dns_lookup_seconds_count") == 5


@pytest.mark.parametrize(
    ("seconds", "below", "at_or_above"),
    [
        pytest.param(0.00004, None, "5e-05", id="cache-hit-40us"),
        pytest.param(0.0002, "0.0001", "0.00025", id="cache-hit-200us"),
        pytest.param(0.003, "0.0025", "0.005", id="dns-3ms"),
        pytest.param(1.7, "1.0", "2.5", id="slow-dns"),
        pytest.param(4.0, "2.5", "5.0", id="timeout-4s"),
    ],
)
def test_latency_buckets_resolve_cache_hits_and_timeouts(
    seconds: float, below: str | None, at_or_above: str
) -> None:
    rig = make_rig()
    rig.metrics.observe_latency(seconds)
    if below is not None:
        assert rig.value("nullmx_dns_lookup_seconds_bucket", le=below) == 0
    assert rig.value("nullmx_dns_lookup_seconds_bucket", le=at_or_above) == 1


def test_connections_and_callback_errors() -> None:
    rig = make_rig()
    rig.metrics.connection_opened()
    rig.metrics.connection_opened()
    rig.metrics.connection_closed()
    rig.metrics.count_callback_error("envrcpt")
    assert rig.value("nullmx_milter_connections_total") == 2
    assert rig.value("nullmx_milter_connections_active") == 1
    assert rig.value("nullmx_callback_errors_total", stage="envrcpt") == 1
    assert rig.value("nullmx_callback_errors_total", stage="envfrom") == 0


def test_operations_guide_metrics_table_lists_every_metric() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    start = guide.index("\n## Metrics\n")
    table = guide[start : guide.index("\n## ", start + 1)]
    documented = set(re.findall(r"^\| `(nullmx_\w+)`", table, re.MULTILINE))
    exported = set()
    for family in make_rig().registry.collect():
        if family.name.startswith("nullmx_"):
            suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
            exported.add(family.name + suffix)
    assert documented == exported
