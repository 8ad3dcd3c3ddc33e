"""The configuration: a frozen dataclass tree, loaded strictly from TOML."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nullmx_milter.address import to_a_label
from nullmx_milter.dnssec import (
    DEFAULT_PROBE,
    DEFAULT_PROBE_QUERY,
    DnssecMode,
    ProbeQuery,
    parse_probe,
    trust_problem,
)
from nullmx_milter.endpoints import Nameserver, check_listen, check_socket, parse_nameserver
from nullmx_milter.errors import ConfigError, ReplyError
from nullmx_milter.header_check import HeaderFromCheck
from nullmx_milter.policy import Mode, OnDnsError, SenderCheck
from nullmx_milter.reply import ReplyTemplate
from nullmx_milter.suggest import BUILTIN_PROVIDERS

DEFAULT_RECIPIENT_REPLY = (
    "<{address}>: Recipient address rejected: {domain} does not accept mail",
    "Did you mean <{suggestion}>?",
    "{domain} publishes a null MX record (RFC 7505): it has declared that it receives no email",
    "Check the address for a typo, or reach the recipient another way",
)
DEFAULT_SENDER_REPLY = (
    "<{address}>: Sender address rejected: {domain} does not accept mail",
    "{domain} publishes a null MX record (RFC 7505): replies and bounces could never reach you",
    "Send from an address in a domain that accepts mail",
)
DEFAULT_HEADER_FROM_REPLY = (
    "<{address}>: Sender address rejected: the From header's domain {domain} does not accept mail",
    "{domain} publishes a null MX record (RFC 7505): replies to this message could never arrive",
    "Send from an address in a domain that accepts mail",
)
DEFAULT_TEMPFAIL_REPLY = (
    "<{address}>: DNS lookup of the MX records of {domain} failed; try again later",
)
DEFAULT_POLICY_SERVICE_RECIPIENT_REPLY = (
    "{domain} publishes a null MX record (RFC 7505) and accepts no mail;"
    " check the address for a typo, or reach the recipient another way"
)
DEFAULT_POLICY_SERVICE_SENDER_REPLY = (
    "{domain} publishes a null MX record (RFC 7505): replies and bounces could never reach you"
)
DEFAULT_POLICY_SERVICE_TEMPFAIL_REPLY = (
    "DNS lookup of the MX records of {domain} failed; try again later"
)
LOG_LEVELS = ("debug", "info", "warning", "error")
# Bounds that keep the tallies' memory and the status report's size sensible.
MAX_LEARNED_DOMAINS = 100_000
MAX_TOP_DOMAINS = 100

EnumT = TypeVar("EnumT", Mode, OnDnsError, SenderCheck, DnssecMode, HeaderFromCheck)


@dataclass(frozen=True)
class MilterConfig:
    """[milter]: where libmilter listens and the name the MTA knows it by."""

    socket: str = "inet:8894@127.0.0.1"
    name: str = "nullmx-milter"
    # A unix socket's permission bits (applied as the process umask): the MTA's user must
    # be able to write to it, so owner and group get read-write.
    socket_mode: int = 0o660


@dataclass(frozen=True)
class DnsConfig:
    """[dns]: where MX queries go and how long they may take."""

    nameservers: tuple[Nameserver, ...] = ()
    timeout: float = 2.0
    fail_fast_after: int = 5
    probe_interval: float = 1.0
    # docs/security.md "DNSSEC": reject only on an authenticated null MX, from a trusted resolver.
    dnssec: DnssecMode = DnssecMode.OFF
    resolver_path_trusted: bool = False
    dnssec_probe: ProbeQuery | None = DEFAULT_PROBE_QUERY
    dnssec_probe_interval: float = 300.0


@dataclass(frozen=True)
class CacheConfig:
    """[cache]: the shared MX cache."""

    max_entries: int = 100_000
    min_ttl: float = 5.0
    max_ttl: float = 3600.0
    failure_ttl: float = 5.0


@dataclass(frozen=True)
class RepliesConfig:
    """[policy.replies]: the reply text lines; codes are fixed by RFC 7505 and RFC 3463."""

    recipient: tuple[str, ...] = DEFAULT_RECIPIENT_REPLY
    sender: tuple[str, ...] = DEFAULT_SENDER_REPLY
    tempfail: tuple[str, ...] = DEFAULT_TEMPFAIL_REPLY
    header_from: tuple[str, ...] = DEFAULT_HEADER_FROM_REPLY


@dataclass(frozen=True)
class PolicyConfig:
    """[policy]: what to do with what DNS said."""

    mode: Mode = Mode.ENFORCE
    on_dns_error: OnDnsError = OnDnsError.ACCEPT
    sender_null_mx: SenderCheck = SenderCheck.OFF
    header_from_null_mx: HeaderFromCheck = HeaderFromCheck.OFF
    allowlist: frozenset[str] = frozenset()
    replies: RepliesConfig = field(default_factory=RepliesConfig)


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: the HTTP listener for /metrics ("" disables it)."""

    listen: str = "127.0.0.1:9466"


@dataclass(frozen=True)
class PolicyServiceConfig:
    """[policy_service]: the Postfix policy delegation listener ("" disables it)."""

    listen: str = ""
    idle_timeout: float = 300.0
    recipient_reply: str = DEFAULT_POLICY_SERVICE_RECIPIENT_REPLY
    sender_reply: str = DEFAULT_POLICY_SERVICE_SENDER_REPLY
    tempfail_reply: str = DEFAULT_POLICY_SERVICE_TEMPFAIL_REPLY


@dataclass(frozen=True)
class LogConfig:
    """[log]: stderr logging, optionally also to syslog (facility mail)."""

    level: str = "info"
    syslog: bool = False


@dataclass(frozen=True)
class SuggestionsConfig:
    """[suggestions]: "did you mean" for rejected recipients (docs/checks.md)."""

    enabled: bool = True
    providers: tuple[str, ...] = BUILTIN_PROVIDERS
    extra_providers: tuple[str, ...] = ()
    learned_domains: int = 1000
    learned_min_count: int = 10


@dataclass(frozen=True)
class StatusConfig:
    """[status]: the 211 status report (text and JSON)."""

    top_domains: int = 10


@dataclass(frozen=True)
class Config:
    """The whole configuration; `Config()` is the embedded default."""

    milter: MilterConfig = field(default_factory=MilterConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    policy_service: PolicyServiceConfig = field(default_factory=PolicyServiceConfig)
    suggestions: SuggestionsConfig = field(default_factory=SuggestionsConfig)
    status: StatusConfig = field(default_factory=StatusConfig)


class _Table:
    """Reads one TOML table, consuming keys so that leftovers can be reported as unknown."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(path, "must be a table")
        self._raw = dict(raw)
        self._path = path

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def table(self, name: str) -> _Table:
        return _Table(self._raw.pop(name, {}), self.key(name))

    def text(self, name: str, default: str) -> str:
        value = self._raw.pop(name, default)
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a string, not {_toml_type(value)}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._raw.pop(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, not {_toml_type(value)}")
        return value

    def number(self, name: str, default: float, minimum: float, *, inclusive: bool) -> float:
        value = self._raw.pop(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"must be a number, not {_toml_type(value)}")
        if value < minimum or (not inclusive and value == minimum):
            raise ConfigError(self.key(name), f"must be {'>=' if inclusive else '>'} {minimum:g}")
        return float(value)

    def integer(self, name: str, default: int, minimum: int) -> int:
        value = self._raw.pop(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer, not {_toml_type(value)}")
        if value < minimum:
            raise ConfigError(self.key(name), f"must be >= {minimum}")
        return value

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._raw.pop(name, list(default))
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(value)

    def choice(self, name: str, default: EnumT) -> EnumT:
        kind = type(default)
        value = self.text(name, default.value)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in kind)
            raise ConfigError(self.key(name), f"must be one of {allowed}, not {value!r}") from None

    def finish(self) -> None:
        if self._raw:
            unknown = sorted(self._raw)[0]
            raise ConfigError(self.key(unknown), "unknown key")


def _toml_type(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _checked(key: str, check: Callable[[str], Any], value: str) -> Any:
    try:
        return check(value)
    except ValueError as error:
        raise ConfigError(key, str(error)) from None


def _replies(table: _Table) -> RepliesConfig:
    defaults = RepliesConfig()
    replies = RepliesConfig(
        recipient=table.strings("recipient", defaults.recipient),
        sender=table.strings("sender", defaults.sender),
        tempfail=table.strings("tempfail", defaults.tempfail),
        header_from=table.strings("header_from", defaults.header_from),
    )
    table.finish()
    for name in ("recipient", "sender", "tempfail", "header_from"):
        try:
            template = ReplyTemplate("556", "5.1.10", getattr(replies, name))
        except ReplyError as error:
            raise ConfigError(table.key(name), str(error)) from None
        if template.uses_suggestion and name != "recipient":
            raise ConfigError(table.key(name), "only the recipient reply can use {suggestion}")
    return replies


def _domains(table: _Table, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of domain names in A-label form, duplicates dropped, order kept."""
    domains: dict[str, None] = {}
    for entry in table.strings(name, default):
        a_label = to_a_label(entry)
        if a_label is None or "." not in a_label:
            raise ConfigError(table.key(name), f"{entry!r} is not a domain name")
        domains[a_label] = None
    return tuple(domains)


def _allowlist(table: _Table) -> frozenset[str]:
    domains = set()
    for entry in table.strings("allowlist", ()):
        a_label = to_a_label(entry.lstrip("."))
        if a_label is None:
            raise ConfigError(table.key("allowlist"), f"{entry!r} is not a domain name")
        domains.add(a_label)
    return frozenset(domains)


def _check_one_port_per_address(key: str, servers: tuple[Nameserver, ...]) -> None:
    """The resolver keeps one port per address: a second port would silently replace the
    first, so the same address may not be listed with two ports."""
    ports: dict[str, Nameserver] = {}
    for server in servers:
        first = ports.setdefault(server.host, server)
        if first.port != server.port:
            raise ConfigError(
                key, f"{first} and {server}: one address cannot be asked on two ports"
            )


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a Config; raises ConfigError naming the dotted key."""
    root = _Table(raw, "")
    default = Config()

    milter = root.table("milter")
    milter_config = MilterConfig(
        socket=_checked(
            milter.key("socket"), check_socket, milter.text("socket", default.milter.socket)
        ),
        name=milter.text("name", default.milter.name),
        socket_mode=milter.integer("socket_mode", default.milter.socket_mode, 0),
    )
    if milter_config.socket_mode > 0o777:
        raise ConfigError(
            milter.key("socket_mode"), "must be a permission mode from 0o000 to 0o777"
        )
    if not milter_config.name.strip():
        raise ConfigError(milter.key("name"), "must not be empty")
    milter.finish()

    dns = root.table("dns")
    servers = tuple(
        _checked(dns.key("nameservers"), parse_nameserver, spec)
        for spec in dns.strings("nameservers", ())
    )
    dns_config = DnsConfig(
        nameservers=servers,
        timeout=dns.number("timeout", default.dns.timeout, 0.0, inclusive=False),
        fail_fast_after=dns.integer("fail_fast_after", default.dns.fail_fast_after, 0),
        probe_interval=dns.number(
            "probe_interval", default.dns.probe_interval, 0.0, inclusive=False
        ),
        dnssec=dns.choice("dnssec", default.dns.dnssec),
        resolver_path_trusted=dns.flag("resolver_path_trusted", default.dns.resolver_path_trusted),
        dnssec_probe=_checked(
            dns.key("dnssec_probe"), parse_probe, dns.text("dnssec_probe", DEFAULT_PROBE)
        ),
        dnssec_probe_interval=dns.number(
            "dnssec_probe_interval", default.dns.dnssec_probe_interval, 0.0, inclusive=False
        ),
    )
    if dns_config.timeout > 30:
        raise ConfigError(dns.key("timeout"), "must be <= 30 (MTAs give a milter about 30 s)")
    _check_one_port_per_address(dns.key("nameservers"), servers)
    if servers:
        # The system resolver's addresses are checked where the resolver is built.
        problem = trust_problem(
            dns_config.dnssec,
            tuple(server.host for server in servers),
            dns_config.resolver_path_trusted,
        )
        if problem:
            raise ConfigError(dns.key("nameservers"), problem)
    dns.finish()

    cache = root.table("cache")
    cache_config = CacheConfig(
        max_entries=cache.integer("max_entries", default.cache.max_entries, 0),
        min_ttl=cache.number("min_ttl", default.cache.min_ttl, 0.0, inclusive=True),
        max_ttl=cache.number("max_ttl", default.cache.max_ttl, 0.0, inclusive=True),
        failure_ttl=cache.number("failure_ttl", default.cache.failure_ttl, 0.0, inclusive=True),
    )
    if cache_config.max_ttl < cache_config.min_ttl:
        raise ConfigError(cache.key("max_ttl"), "must be >= cache.min_ttl")
    cache.finish()

    policy = root.table("policy")
    policy_config = PolicyConfig(
        mode=policy.choice("mode", default.policy.mode),
        on_dns_error=policy.choice("on_dns_error", default.policy.on_dns_error),
        sender_null_mx=policy.choice("sender_null_mx", default.policy.sender_null_mx),
        header_from_null_mx=policy.choice(
            "header_from_null_mx", default.policy.header_from_null_mx
        ),
        allowlist=_allowlist(policy),
        replies=_replies(policy.table("replies")),
    )
    policy.finish()

    metrics = root.table("metrics")
    metrics_config = MetricsConfig(
        listen=_checked(
            metrics.key("listen"), check_listen, metrics.text("listen", default.metrics.listen)
        )
    )
    metrics.finish()

    log = root.table("log")
    level = log.text("level", default.log.level)
    if level not in LOG_LEVELS:
        raise ConfigError(log.key("level"), f"must be one of {', '.join(LOG_LEVELS)}")
    log_config = LogConfig(level=level, syslog=log.flag("syslog", default.log.syslog))
    log.finish()

    service = root.table("policy_service")
    service_default = default.policy_service
    service_config = PolicyServiceConfig(
        listen=service.text("listen", service_default.listen),
        idle_timeout=service.number(
            "idle_timeout", service_default.idle_timeout, 0.0, inclusive=False
        ),
        recipient_reply=service.text("recipient_reply", service_default.recipient_reply),
        sender_reply=service.text("sender_reply", service_default.sender_reply),
        tempfail_reply=service.text("tempfail_reply", service_default.tempfail_reply),
    )
    if service_config.listen:
        _checked(service.key("listen"), check_socket, service_config.listen)
    for name in ("recipient_reply", "sender_reply", "tempfail_reply"):
        try:
            # One line that used {suggestion} would leave nothing: ReplyTemplate refuses it.
            ReplyTemplate("556", "5.1.10", (getattr(service_config, name),))
        except ReplyError as error:
            raise ConfigError(service.key(name), str(error)) from None
    service.finish()

    suggestions = root.table("suggestions")
    suggestions_default = default.suggestions
    suggestions_config = SuggestionsConfig(
        enabled=suggestions.flag("enabled", suggestions_default.enabled),
        providers=_domains(suggestions, "providers", suggestions_default.providers),
        extra_providers=_domains(suggestions, "extra_providers", ()),
        learned_domains=suggestions.integer(
            "learned_domains", suggestions_default.learned_domains, 0
        ),
        learned_min_count=suggestions.integer(
            "learned_min_count", suggestions_default.learned_min_count, 1
        ),
    )
    if suggestions_config.learned_domains > MAX_LEARNED_DOMAINS:
        raise ConfigError(suggestions.key("learned_domains"), f"must be <= {MAX_LEARNED_DOMAINS:,}")
    suggestions.finish()

    status = root.table("status")
    status_config = StatusConfig(
        top_domains=status.integer("top_domains", default.status.top_domains, 0)
    )
    if status_config.top_domains > MAX_TOP_DOMAINS:
        raise ConfigError(status.key("top_domains"), f"must be <= {MAX_TOP_DOMAINS}")
    status.finish()

    root.finish()
    return Config(
        milter_config,
        dns_config,
        cache_config,
        policy_config,
        metrics_config,
        log_config,
        service_config,
        suggestions_config,
        status_config,
    )


def load_config(path: Path | None) -> Config:
    """The config in `path`, or the embedded defaults when `path` is None."""
    if path is None:
        return Config()
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as error:
        raise ConfigError(str(path), f"cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), f"not valid TOML: {error}") from None
    return config_from_dict(raw)
