"""Config validation key by key: the exact message for each bad value, and the edges that pass."""

from __future__ import annotations

from typing import Any

import pytest

from nullmx_milter.config import Config, config_from_dict, load_config
from nullmx_milter.endpoints import Nameserver
from nullmx_milter.errors import ConfigError

BAD_VALUES = [
    pytest.param({"dns": {"fail_fast_after": -1}}, "dns.fail_fast_after", "must be >= 0"),
    pytest.param(
        {"dns": {"fail_fast_after": 1.5}},
        "dns.fail_fast_after",
        "must be an integer, not a number",
    ),
    pytest.param(
        {"dns": {"fail_fast_after": True}},
        "dns.fail_fast_after",
        "must be an integer, not a boolean",
    ),
    pytest.param({"dns": {"probe_interval": 0}}, "dns.probe_interval", "must be > 0"),
    pytest.param({"dns": {"probe_interval": -2.5}}, "dns.probe_interval", "must be > 0"),
    pytest.param(
        {"dns": {"probe_interval": "1"}}, "dns.probe_interval", "must be a number, not a string"
    ),
    pytest.param(
        {"dns": {"timeout": 30.5}},
        "dns.timeout",
        "must be <= 30 (MTAs give a milter about 30 s)",
    ),
    pytest.param({"dns": {"timeout": [1]}}, "dns.timeout", "must be a number, not a list"),
    pytest.param({"cache": {"min_ttl": -1}}, "cache.min_ttl", "must be >= 0"),
    pytest.param({"cache": {"failure_ttl": -0.5}}, "cache.failure_ttl", "must be >= 0"),
    pytest.param({"cache": {"max_ttl": -1}}, "cache.max_ttl", "must be >= 0"),
    pytest.param(
        {"cache": {"max_entries": 1.0}}, "cache.max_entries", "must be an integer, not a number"
    ),
    pytest.param(
        {"cache": {"min_ttl": 10, "max_ttl": 9.5}}, "cache.max_ttl", "must be >= cache.min_ttl"
    ),
    pytest.param(
        {"milter": {"socket_mode": 0o1000}},
        "milter.socket_mode",
        "must be a permission mode from 0o000 to 0o777",
    ),
    pytest.param({"milter": {"socket_mode": -1}}, "milter.socket_mode", "must be >= 0"),
    pytest.param({"milter": {"name": ""}}, "milter.name", "must not be empty"),
    pytest.param({"milter": {"name": 5}}, "milter.name", "must be a string, not an integer"),
    pytest.param(
        {"milter": {"socket": "inet:0@127.0.0.1"}}, "milter.socket", "port 0 is out of range"
    ),
    pytest.param(
        {"milter": {"socket": "inet:65536@127.0.0.1"}},
        "milter.socket",
        "port 65536 is out of range",
    ),
    pytest.param(
        {"milter": {"socket": "unix:relative.sock"}},
        "milter.socket",
        "a unix socket needs an absolute path",
    ),
    pytest.param(
        {"milter": {"socket": "inet:25"}},
        "milter.socket",
        "'inet:25' is not inet:PORT@HOST, inet6:PORT@HOST, unix:/path or fd:N",
    ),
    pytest.param(
        {"metrics": {"listen": "127.0.0.1:0"}},
        "metrics.listen",
        "port '0' is not a number from 1 to 65535",
    ),
    pytest.param(
        {"metrics": {"listen": "127.0.0.1:65536"}},
        "metrics.listen",
        "port '65536' is not a number from 1 to 65535",
    ),
    pytest.param(
        {"metrics": {"listen": "127.0.0.1"}},
        "metrics.listen",
        "'127.0.0.1' has no port; write host:port, [v6]:port or '' (off)",
    ),
    pytest.param({"metrics": {"listen": ":9466"}}, "metrics.listen", "':9466' has no host"),
    pytest.param(
        {"metrics": {"listen": "[::1]9466"}},
        "metrics.listen",
        "'[::1]9466' is not [v6] or [v6]:port",
    ),
    pytest.param(
        {"dns": {"nameservers": ["127.0.0.1:0"]}},
        "dns.nameservers",
        "port '0' is not a number from 1 to 65535",
    ),
    pytest.param(
        {"dns": {"nameservers": ["ns.example"]}},
        "dns.nameservers",
        "'ns.example' is not an IP address",
    ),
    pytest.param({"dns": {"nameservers": [53]}}, "dns.nameservers", "must be a list of strings"),
    pytest.param(
        {"policy_service": {"listen": "inet:99999@127.0.0.1"}},
        "policy_service.listen",
        "port 99999 is out of range",
    ),
    pytest.param(
        {"policy_service": {"listen": "127.0.0.1:10040"}},
        "policy_service.listen",
        "'127.0.0.1:10040' is not inet:PORT@HOST, inet6:PORT@HOST, unix:/path or fd:N",
    ),
    pytest.param(
        {"policy_service": {"idle_timeout": 0}}, "policy_service.idle_timeout", "must be > 0"
    ),
    pytest.param(
        {"policy_service": {"recipient_reply": "{user}"}},
        "policy_service.recipient_reply",
        "unknown template field {user}; use {address}, {domain} or {suggestion}",
    ),
    pytest.param(
        {"policy_service": {"sender_reply": "50{"}},
        "policy_service.sender_reply",
        "",
    ),
    pytest.param(
        {"policy_service": {"tempfail_reply": "caf\u00e9"}},
        "policy_service.tempfail_reply",
        "template text must be printable ASCII: 'café'",
    ),
    pytest.param({"policy_service": {"listen_on": "x"}}, "policy_service.listen_on", "unknown key"),
    pytest.param({"policy_service": "x"}, "policy_service", "must be a table"),
    pytest.param(
        {"policy": {"mode": "off"}},
        "policy.mode",
        "must be one of 'enforce', 'dry-run', not 'off'",
    ),
    pytest.param(
        {"policy": {"on_dns_error": "reject"}},
        "policy.on_dns_error",
        "must be one of 'accept', 'tempfail', not 'reject'",
    ),
    pytest.param(
        {"policy": {"allowlist": [".ok.example", "bad..example"]}},
        "policy.allowlist",
        "'bad..example' is not a domain name",
    ),
    pytest.param(
        {"policy": {"replies": {"tempfail": []}}},
        "policy.replies.tempfail",
        "a reply has 1 to 32 lines",
    ),
    pytest.param({"policy": {"replies": {"bogus": ["x"]}}}, "policy.replies.bogus", "unknown key"),
    pytest.param(
        {"log": {"level": "trace"}}, "log.level", "must be one of debug, info, warning, error"
    ),
    pytest.param({"log": {"syslog": 1}}, "log.syslog", "must be true or false, not an integer"),
    pytest.param({"zzz": 1, "aaa": 2}, "aaa", "unknown key"),
]


# Plain ids: the messages hold braces, quotes and non-ASCII (and `make mutation` selects
# tests by id).
@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    BAD_VALUES,
    ids=[f"bad{index}" for index in range(len(BAD_VALUES))],
)
def test_bad_values_name_the_key_and_say_why(raw: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    assert caught.value.key == key
    if problem:
        assert caught.value.problem == problem
    else:
        assert caught.value.problem


@pytest.mark.parametrize(
    ("raw", "check"),
    [
        pytest.param({"dns": {"timeout": 30}}, lambda c: c.dns.timeout == 30.0, id="timeout-30"),
        pytest.param({"dns": {"timeout": 1}}, lambda c: c.dns.timeout == 1.0, id="int-timeout"),
        pytest.param(
            {"dns": {"fail_fast_after": 0}}, lambda c: c.dns.fail_fast_after == 0, id="never-trip"
        ),
        pytest.param(
            {"dns": {"probe_interval": 0.001}},
            lambda c: c.dns.probe_interval == 0.001,
            id="probe-small",
        ),
        pytest.param(
            {"cache": {"min_ttl": 0, "max_ttl": 0, "failure_ttl": 0}},
            lambda c: (c.cache.min_ttl, c.cache.max_ttl, c.cache.failure_ttl) == (0, 0, 0),
            id="ttls-zero",
        ),
        pytest.param(
            {"cache": {"min_ttl": 7, "max_ttl": 7}},
            lambda c: c.cache.max_ttl == c.cache.min_ttl == 7.0,
            id="ttl-equal",
        ),
        pytest.param(
            {"cache": {"max_entries": 0}}, lambda c: c.cache.max_entries == 0, id="cache-off"
        ),
        pytest.param(
            {"milter": {"socket_mode": 0o777}}, lambda c: c.milter.socket_mode == 0o777, id="777"
        ),
        pytest.param(
            {"milter": {"socket_mode": 0}}, lambda c: c.milter.socket_mode == 0, id="mode-0"
        ),
        pytest.param(
            {"milter": {"socket": "inet:1@127.0.0.1"}},
            lambda c: c.milter.socket == "inet:1@127.0.0.1",
            id="port-1",
        ),
        pytest.param(
            {"milter": {"socket": "inet6:65535@::1"}},
            lambda c: c.milter.socket == "inet6:65535@::1",
            id="port-65535",
        ),
        pytest.param(
            {"milter": {"socket": "local:/run/x.sock"}},
            lambda c: c.milter.socket == "local:/run/x.sock",
            id="local",
        ),
        pytest.param({"milter": {"socket": "fd:3"}}, lambda c: c.milter.socket == "fd:3", id="fd"),
        pytest.param(
            {"metrics": {"listen": "[::1]:65535"}},
            lambda c: c.metrics.listen == "[::1]:65535",
            id="metrics-v6",
        ),
        pytest.param({"metrics": {"listen": ""}}, lambda c: c.metrics.listen == "", id="off"),
        pytest.param(
            {"dns": {"nameservers": ["127.0.0.1:1", "[::1]:65535", "127.0.0.2"]}},
            lambda c: (
                c.dns.nameservers
                == (
                    Nameserver("127.0.0.1", 1),
                    Nameserver("::1", 65535),
                    Nameserver("127.0.0.2", 53),
                )
            ),
            id="nameservers",
        ),
        pytest.param(
            {"policy_service": {"listen": "inet6:10040@::1", "idle_timeout": 0.5}},
            lambda c: (
                (c.policy_service.listen, c.policy_service.idle_timeout) == ("inet6:10040@::1", 0.5)
            ),
            id="policy-service",
        ),
        pytest.param(
            {"policy": {"allowlist": [".Sub.Example.", "bücher.example", "Xy.example"]}},
            lambda c: (
                c.policy.allowlist
                == frozenset({"sub.example", "xn--bcher-kva.example", "xy.example"})
            ),
            id="allowlist-forms",
        ),
        pytest.param(
            {"log": {"level": "warning", "syslog": False}},
            lambda c: (c.log.level, c.log.syslog) == ("warning", False),
            id="log",
        ),
    ],
)
def test_edges_that_pass(raw: dict[str, Any], check: Any) -> None:
    config = config_from_dict(raw)
    assert check(config)


def test_an_empty_dict_is_the_defaults() -> None:
    assert config_from_dict({}) == Config() == load_config(None)


def test_unreadable_file_names_the_path_and_the_reason(tmp_path: Any) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert (caught.value.key, caught.value.problem) == (
        str(missing),
        "cannot read: No such file or directory",
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("a = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert caught.value.key == str(broken)
    assert caught.value.problem.startswith("not valid TOML: ")
