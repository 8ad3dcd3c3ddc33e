"""Strict TOML config: defaults, the sample file, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nullmx_milter.config import (
    MAX_LEARNED_DOMAINS,
    MAX_TOP_DOMAINS,
    Config,
    config_from_dict,
    load_config,
)
from nullmx_milter.dnssec import DnssecMode, ProbeQuery
from nullmx_milter.endpoints import Nameserver, parse_nameserver
from nullmx_milter.errors import ConfigError
from nullmx_milter.header_check import HeaderFromCheck
from nullmx_milter.policy import Mode, OnDnsError, SenderCheck

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "nullmx-milter.toml"


def test_sample_config_parses_to_the_embedded_defaults() -> None:
    assert load_config(SAMPLE) == Config()


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty) == Config() == load_config(None)


def test_full_config_is_read() -> None:
    config = config_from_dict(
        {
            "milter": {"socket": "unix:/run/nullmx/sock", "name": "nm"},
            "dns": {"nameservers": ["127.0.0.1:5353", "::1", "[::1]:53"], "timeout": 1},
            "cache": {"max_entries": 10, "min_ttl": 0, "max_ttl": 60, "failure_ttl": 0},
            "policy": {
                "mode": "dry-run",
                "on_dns_error": "tempfail",
                "sender_null_mx": "reject",
                "allowlist": ["Bücher.Example.", ".sub.example"],
                "replies": {"recipient": ["{domain} takes no mail"]},
            },
            "metrics": {"listen": ""},
            "log": {"level": "debug", "syslog": True},
        }
    )
    assert config.milter.socket == "unix:/run/nullmx/sock"
    assert config.dns.nameservers == (
        Nameserver("127.0.0.1", 5353),
        Nameserver("::1", 53),
        Nameserver("::1", 53),
    )
    assert config.dns.timeout == 1.0
    assert config.policy.mode is Mode.DRY_RUN
    assert config.policy.on_dns_error is OnDnsError.TEMPFAIL
    assert config.policy.sender_null_mx is SenderCheck.REJECT
    assert config.policy.allowlist == frozenset({"xn--bcher-kva.example", "sub.example"})
    assert config.policy.replies.recipient == ("{domain} takes no mail",)
    assert config.metrics.listen == ""
    assert config.log.syslog is True


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        pytest.param({"bogus": {}}, "bogus", "unknown key", id="unknown-table"),
        pytest.param({"dns": {"timeuot": 1}}, "dns.timeuot", "unknown key", id="typo"),
        pytest.param({"dns": {"timeout": 0}}, "dns.timeout", "must be > 0", id="zero-timeout"),
        pytest.param({"dns": {"timeout": "2"}}, "dns.timeout", "must be a number", id="str"),
        pytest.param({"dns": {"timeout": 60}}, "dns.timeout", "<= 30", id="too-long"),
        pytest.param({"dns": {"timeout": True}}, "dns.timeout", "must be a number", id="bool"),
        pytest.param({"dns": {"nameservers": ["dns.example"]}}, "dns.nameservers", "IP", id="name"),
        pytest.param(
            {"dns": {"nameservers": ["127.0.0.1:99999"]}}, "dns.nameservers", "port", id="port"
        ),
        pytest.param({"dns": {"nameservers": "127.0.0.1"}}, "dns.nameservers", "list", id="str"),
        pytest.param(
            {"dns": {"nameservers": ["127.0.0.1", "127.0.0.1:5353"]}},
            "dns.nameservers",
            "127.0.0.1:53 and 127.0.0.1:5353: one address cannot be asked on two ports",
            id="one-address-two-ports",
        ),
        pytest.param({"milter": {"socket": "tcp:25"}}, "milter.socket", "inet:", id="socket"),
        pytest.param({"milter": {"socket": "unix:rel"}}, "milter.socket", "absolute", id="rel"),
        pytest.param({"milter": {"name": " "}}, "milter.name", "empty", id="name-empty"),
        pytest.param({"milter": {"socket_mode": 0o1777}}, "milter.socket_mode", "mode", id="mode"),
        pytest.param({"milter": {"socket_mode": "0660"}}, "milter.socket_mode", "integer", id="m"),
        pytest.param({"policy": {"mode": "on"}}, "policy.mode", "'enforce'", id="mode"),
        pytest.param({"policy": {"on_dns_error": "reject"}}, "policy.on_dns_error", "", id="err"),
        pytest.param({"policy": {"allowlist": ["a..b"]}}, "policy.allowlist", "", id="allow"),
        pytest.param(
            {"policy": {"replies": {"recipient": ["{x}"]}}},
            "policy.replies.recipient",
            "unknown template field",
            id="template",
        ),
        pytest.param(
            {"policy": {"replies": {"sender": ["x" * 600]}}},
            "policy.replies.sender",
            "512",
            id="long-line",
        ),
        pytest.param({"cache": {"max_entries": -1}}, "cache.max_entries", ">= 0", id="negative"),
        pytest.param(
            {"cache": {"min_ttl": 10, "max_ttl": 5}}, "cache.max_ttl", ">=", id="ttl-order"
        ),
        pytest.param({"metrics": {"listen": "127.0.0.1"}}, "metrics.listen", "port", id="listen"),
        pytest.param({"log": {"level": "loud"}}, "log.level", "one of", id="level"),
        pytest.param({"log": {"syslog": "yes"}}, "log.syslog", "true or false", id="syslog"),
        pytest.param({"policy": []}, "policy", "must be a table", id="not-table"),
        pytest.param({"dns": {"dnssec": "on"}}, "dns.dnssec", "'require'", id="dnssec"),
        pytest.param({"dns": {"dnssec_probe": "."}}, "dns.dnssec_probe", "TYPE:NAME", id="probe"),
        pytest.param(
            {"dns": {"dnssec_probe_interval": 0}}, "dns.dnssec_probe_interval", "> 0", id="every"
        ),
        pytest.param(
            {"policy": {"header_from_null_mx": "on"}}, "policy.header_from_null_mx", "", id="hf"
        ),
        pytest.param(
            {"policy": {"replies": {"sender": ["a", "Did you mean <{suggestion}>?"]}}},
            "policy.replies.sender",
            "only the recipient reply",
            id="suggestion-in-sender",
        ),
        pytest.param(
            {"policy": {"replies": {"recipient": ["Did you mean <{suggestion}>?"]}}},
            "policy.replies.recipient",
            "one must not",
            id="only-suggestion-lines",
        ),
        pytest.param(
            {"policy": {"replies": {"header_from": ["{nope}"]}}},
            "policy.replies.header_from",
            "unknown template field",
            id="header-from-template",
        ),
        pytest.param(
            {"policy_service": {"recipient_reply": "Did you mean <{suggestion}>?"}},
            "policy_service.recipient_reply",
            "one must not",
            id="policy-service-suggestion",
        ),
        pytest.param(
            {"suggestions": {"providers": ["gmail"]}}, "suggestions.providers", "", id="tld"
        ),
        pytest.param(
            {"suggestions": {"extra_providers": ["a..b"]}},
            "suggestions.extra_providers",
            "",
            id="x",
        ),
        pytest.param({"suggestions": {"enabled": 1}}, "suggestions.enabled", "true or", id="on"),
        pytest.param(
            {"suggestions": {"learned_domains": -1}}, "suggestions.learned_domains", ">= 0", id="n"
        ),
        pytest.param(
            {"suggestions": {"learned_domains": 10**6}},
            "suggestions.learned_domains",
            "<= 100,000",
            id="too-many-learned",
        ),
        pytest.param(
            {"suggestions": {"learned_min_count": 0}},
            "suggestions.learned_min_count",
            ">= 1",
            id="c",
        ),
        pytest.param({"status": {"top_domains": -1}}, "status.top_domains", ">= 0", id="top"),
        pytest.param({"status": {"top_domains": 1000}}, "status.top_domains", "<= 100", id="big"),
        pytest.param({"status": {"top": 1}}, "status.top", "unknown key", id="status-typo"),
        pytest.param(
            {"dns": {"dnssec": "require", "nameservers": ["127.0.0.1", "192.0.2.53"]}},
            "dns.nameservers",
            "must be a loopback address",
            id="dnssec-remote-resolver",
        ),
    ],
)
def test_errors_name_the_dotted_key(raw: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[dns\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("127.0.0.1", Nameserver("127.0.0.1", 53), id="v4"),
        pytest.param("127.0.0.1:5353", Nameserver("127.0.0.1", 5353), id="v4-port"),
        pytest.param("[::1]:5353", Nameserver("::1", 5353), id="v6-port"),
        pytest.param("2001:db8::53", Nameserver("2001:db8::53", 53), id="v6-bare"),
    ],
)
def test_nameserver_forms(spec: str, expected: Nameserver) -> None:
    assert parse_nameserver(spec) == expected


def test_dnssec_settings() -> None:
    config = config_from_dict(
        {
            "dns": {
                "nameservers": ["192.0.2.53", "[2001:db8::53]:5353"],
                "dnssec": "require",
                "resolver_path_trusted": True,
                "dnssec_probe": "soa:example.org",
                "dnssec_probe_interval": 60,
            }
        }
    )
    assert config.dns.dnssec is DnssecMode.REQUIRE
    assert config.dns.resolver_path_trusted is True
    assert config.dns.dnssec_probe == ProbeQuery("SOA", "example.org.")
    assert config.dns.dnssec_probe_interval == 60.0
    assert config_from_dict({"dns": {"dnssec_probe": ""}}).dns.dnssec_probe is None
    loopback = config_from_dict({"dns": {"dnssec": "require", "nameservers": ["127.0.0.1:53"]}})
    assert loopback.dns.dnssec is DnssecMode.REQUIRE
    default = config_from_dict({})
    assert (default.dns.dnssec, default.dns.dnssec_probe) == (DnssecMode.OFF, ProbeQuery("NS", "."))


def test_suggestion_and_status_settings_are_read() -> None:
    config = config_from_dict(
        {
            "policy": {"header_from_null_mx": "dry-run"},
            "suggestions": {
                "providers": ["Example.ORG", "bücher.example", "example.org"],
                "extra_providers": ["partner.example"],
                "learned_domains": 0,
                "learned_min_count": 3,
            },
            "status": {"top_domains": 0},
        }
    )
    assert config.policy.header_from_null_mx is HeaderFromCheck.DRY_RUN
    assert config.suggestions.providers == ("example.org", "xn--bcher-kva.example")
    assert config.suggestions.extra_providers == ("partner.example",)
    assert (config.suggestions.learned_domains, config.suggestions.learned_min_count) == (0, 3)
    assert config.status.top_domains == 0


@pytest.mark.parametrize(
    ("replies", "key", "problem"),
    [
        pytest.param(
            {"sender": ["a", "Did you mean <{suggestion}>?"]},
            "policy.replies.sender",
            "only the recipient reply can use {suggestion}",
            id="sender",
        ),
        pytest.param(
            {"recipient": ["Did you mean <{suggestion}>?"]},
            "policy.replies.recipient",
            "every template line uses {suggestion}: one must not",
            id="recipient-only-suggestion-lines",
        ),
    ],
)
def test_the_suggestion_rules_are_stated_whole(
    replies: dict[str, list[str]], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"policy": {"replies": replies}})
    assert (caught.value.key, caught.value.problem) == (key, problem)


def test_the_largest_tallies_allowed() -> None:
    config = config_from_dict(
        {
            "suggestions": {"learned_domains": MAX_LEARNED_DOMAINS},
            "status": {"top_domains": MAX_TOP_DOMAINS},
        }
    )
    assert config.suggestions.learned_domains == MAX_LEARNED_DOMAINS
    assert config.status.top_domains == MAX_TOP_DOMAINS


def test_without_dnssec_any_resolver_may_answer() -> None:
    # Only dns.dnssec = "require" trusts the AD bit, so only then must the resolver be local.
    config = config_from_dict({"dns": {"nameservers": ["192.0.2.53"]}})
    assert config.dns.nameservers == (Nameserver("192.0.2.53", 53),)
