"""The runtime builder: what a config implies, what a reload keeps, what needs a restart."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from nullmx_milter.address import parse_address
from nullmx_milter.config import Config, DnsConfig, config_from_dict
from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.dnssec import DnssecMode
from nullmx_milter.endpoints import Nameserver
from nullmx_milter.errors import ConfigError
from nullmx_milter.header_check import HeaderFromCheck
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Mode, Role, Verdict
from nullmx_milter.runtime import build_runtime, in_force, settings_needing_restart

from fakes import TEST_VERSIONS, FakeSource


def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), TEST_VERSIONS)


def test_builds_policy_and_both_reply_sets_from_the_config() -> None:
    config = config_from_dict(
        {
            "policy": {"mode": "dry-run", "replies": {"recipient": ["{domain} is dead"]}},
            "policy_service": {"recipient_reply": "{domain} takes no mail"},
        }
    )
    runtime = build_runtime(config, metrics(), source=FakeSource())
    assert runtime.config is config
    assert runtime.engine.check_recipient("<a@null.example>").verdict is Verdict.WOULD_REJECT
    recipient = runtime.policy_service_replies.recipient.render("a", "null.example")
    assert (recipient.code, recipient.enhanced, recipient.lines) == (
        "556",
        "5.1.10",
        ("null.example takes no mail",),
    )
    enforce = build_runtime(
        config_from_dict({"policy": {"replies": {"recipient": ["{domain} is dead"]}}}),
        metrics(),
        source=FakeSource(),
    )
    reply = enforce.engine.check_recipient("<a@null.example>").reply
    assert reply is not None
    assert reply.wire_lines() == ["556 5.1.10 null.example is dead"]


def test_a_reload_with_the_same_dns_settings_keeps_resolver_cache_and_health() -> None:
    shared = metrics()
    first = build_runtime(config_from_dict({"cache": {"max_entries": 10}}), shared)
    first.cache.put("kept.example", MxLookup(MxClass.MX, 60.0))
    second = build_runtime(
        config_from_dict({"cache": {"max_entries": 20}, "policy": {"mode": "dry-run"}}),
        shared,
        previous=first,
    )
    assert second.source is first.source
    assert second.cache is first.cache
    assert second.health is first.health
    assert second.cache.get("kept.example") is not None
    assert second.cache.limits.max_entries == 20
    assert second.policy is not first.policy


@pytest.mark.parametrize(
    "dns",
    [
        pytest.param({"nameservers": ["127.0.0.2:53"]}, id="other-nameserver"),
        pytest.param({"nameservers": ["127.0.0.1:53"], "timeout": 1.5}, id="other-timeout"),
        pytest.param({"nameservers": ["127.0.0.1:53"], "dnssec": "require"}, id="dnssec"),
    ],
)
def test_new_dns_settings_start_with_an_empty_cache(dns: dict[str, Any]) -> None:
    shared = metrics()
    first = build_runtime(config_from_dict({"dns": {"nameservers": ["127.0.0.1:53"]}}), shared)
    first.cache.put("old.example", MxLookup(MxClass.NULL_MX, 60.0))
    second = build_runtime(config_from_dict({"dns": dns}), shared, previous=first)
    assert second.source is not first.source
    assert second.cache is not first.cache
    assert second.health is not first.health
    assert second.cache.get("old.example") is None
    # A connection still on the first runtime keeps its own cache.
    assert first.cache.get("old.example") is not None


def test_fail_fast_settings_reach_the_carried_over_health_record() -> None:
    shared = metrics()
    first = build_runtime(config_from_dict({"dns": {"fail_fast_after": 5}}), shared)
    for _ in range(2):
        first.health.record(MxClass.TIMEOUT, 1.0)
    assert not first.health.snapshot().failing_fast
    build_runtime(config_from_dict({"dns": {"fail_fast_after": 2}}), shared, previous=first)
    assert first.health.snapshot().failing_fast


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        pytest.param({"milter": {"socket": "inet:9999@127.0.0.1"}}, ("milter.socket",), id="sock"),
        pytest.param({"milter": {"socket_mode": 0o600}}, ("milter.socket_mode",), id="mode"),
        pytest.param({"milter": {"name": "other"}}, ("milter.name",), id="name"),
        pytest.param({"metrics": {"listen": "127.0.0.1:9999"}}, ("metrics.listen",), id="metrics"),
        pytest.param(
            {"policy_service": {"listen": "unix:/run/p.sock"}},
            ("policy_service.listen",),
            id="policy-listen",
        ),
        pytest.param({"log": {"syslog": True}}, ("log.syslog",), id="syslog"),
        pytest.param(
            {"policy": {"sender_null_mx": "reject"}}, ("policy.sender_null_mx",), id="sender-on"
        ),
        pytest.param(
            {"policy": {"header_from_null_mx": "reject"}},
            ("policy.header_from_null_mx",),
            id="header-from-on",
        ),
        pytest.param(
            {
                "suggestions": {"enabled": False, "learned_min_count": 3},
                "status": {"top_domains": 0},
            },
            (),
            id="suggestions-and-status-are-live",
        ),
        pytest.param({"policy": {"mode": "dry-run"}}, (), id="mode-is-live"),
        pytest.param({"dns": {"nameservers": ["127.0.0.9"]}}, (), id="dns-is-live"),
        pytest.param({"log": {"level": "debug"}}, (), id="log-level-is-live"),
        pytest.param(
            {"policy_service": {"idle_timeout": 5.0, "recipient_reply": "x {domain}"}},
            (),
            id="policy-service-texts-are-live",
        ),
    ],
)
def test_settings_needing_restart(change: dict[str, Any], keys: tuple[str, ...]) -> None:
    running = config_from_dict({})
    loaded = config_from_dict(change)
    assert settings_needing_restart(running, loaded) == keys
    kept = in_force(running, loaded)
    assert settings_needing_restart(running, kept) == ()


def test_sender_check_between_reject_and_dry_run_is_live() -> None:
    running = config_from_dict({"policy": {"sender_null_mx": "reject"}})
    loaded = config_from_dict({"policy": {"sender_null_mx": "dry-run", "mode": "dry-run"}})
    assert settings_needing_restart(running, loaded) == ()
    kept = in_force(running, loaded)
    assert kept.policy == loaded.policy
    assert kept.policy.mode is Mode.DRY_RUN


def test_in_force_takes_everything_live_from_the_loaded_file() -> None:
    running = config_from_dict({})
    loaded = config_from_dict(
        {
            "milter": {"socket": "inet:9999@127.0.0.1"},
            "dns": {"nameservers": ["127.0.0.9:5353"], "timeout": 0.5},
            "cache": {"max_entries": 7},
            "policy": {"allowlist": ["example.org"]},
            "log": {"level": "warning"},
        }
    )
    kept = in_force(running, loaded)
    assert kept.milter == running.milter
    assert kept.dns.nameservers == (Nameserver("127.0.0.9", 5353),)
    assert kept.dns.timeout == 0.5
    assert kept.cache.max_entries == 7
    assert kept.policy.allowlist == frozenset({"example.org"})
    assert kept.log.level == "warning"


def test_dnssec_reaches_resolver_policy_and_probe() -> None:
    config = config_from_dict(
        {"dns": {"nameservers": ["127.0.0.1:53"], "dnssec": "require", "dnssec_probe": "soa:."}}
    )
    runtime = build_runtime(config, metrics())
    assert isinstance(runtime.source, MxResolver)
    assert runtime.source.dnssec is True
    settings = runtime.probe_settings()
    assert settings.active
    assert (settings.mode, str(settings.query)) == (DnssecMode.REQUIRE, "soa:.")
    lookup = MxLookup(MxClass.NULL_MX, 60.0, authenticated=False)
    decision = runtime.policy.decide(parse_address("<a@b.example>"), lookup, Role.RECIPIENT)
    assert decision.reason == "null_mx_unauthenticated"


def test_dnssec_require_trusts_only_loopback_resolvers() -> None:
    # The system resolver's addresses are only known when the runtime is built.
    remote = Config(
        dns=DnsConfig(nameservers=(Nameserver("192.0.2.53"),), dnssec=DnssecMode.REQUIRE)
    )
    with pytest.raises(ConfigError) as caught:
        build_runtime(remote, metrics())
    assert caught.value.key == "dns.nameservers"
    trusted = dataclasses.replace(
        remote, dns=dataclasses.replace(remote.dns, resolver_path_trusted=True)
    )
    assert build_runtime(trusted, metrics()).config is trusted


def test_header_from_between_reject_and_dry_run_is_live() -> None:
    running = config_from_dict({"policy": {"header_from_null_mx": "reject"}})
    loaded = config_from_dict({"policy": {"header_from_null_mx": "dry-run"}})
    assert settings_needing_restart(running, loaded) == ()
    assert in_force(running, loaded).policy.header_from_null_mx is HeaderFromCheck.DRY_RUN
    off = config_from_dict({})
    assert settings_needing_restart(running, off) == ("policy.header_from_null_mx",)
    assert in_force(running, off).policy.header_from_null_mx is HeaderFromCheck.REJECT


def test_tallies_outlive_a_reload_and_take_its_settings() -> None:
    counters = metrics()
    source = FakeSource(
        {"partner-corp.example": MxClass.MX, "partner-crop.example": MxClass.NULL_MX}
    )
    first = build_runtime(config_from_dict({}), counters, source=source)
    for index in range(5):
        first.engine.check_recipient(f"<u{index}@partner-corp.example>")
    assert first.engine.check_recipient("<b@partner-crop.example>").suggested == ""
    lower = config_from_dict({"suggestions": {"learned_min_count": 5}})
    second = build_runtime(lower, counters, previous=first, source=source)
    assert second.domains is first.domains
    assert second.engine.check_recipient("<b@partner-crop.example>").suggested == (
        "b@partner-corp.example"
    )
    off = config_from_dict({"suggestions": {"enabled": False}})
    third = build_runtime(off, counters, previous=second, source=source)
    assert third.engine.check_recipient("<b@partner-crop.example>").suggestion is None
    assert [entry.item for entry in third.domains.rejected.top(1)] == ["partner-crop.example"]
