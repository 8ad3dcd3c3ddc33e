"""Build what a config implies (policy, replies, lookups) as one frozen runtime to swap whole."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nullmx_milter.cache import CacheLimits, LookupCache
from nullmx_milter.config import (
    Config,
    DnsConfig,
    PolicyServiceConfig,
    RepliesConfig,
    SuggestionsConfig,
)
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.dnssec import DnssecMode, trust_problem
from nullmx_milter.dnssec_probe import ProbeSettings
from nullmx_milter.domain_stats import DomainStats
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.errors import ConfigError
from nullmx_milter.header_check import HeaderFromCheck
from nullmx_milter.lookup_service import MxLookupService, MxSource
from nullmx_milter.metrics import Metrics
from nullmx_milter.policy import NullMxPolicy, ReplyTemplates, SenderCheck
from nullmx_milter.reply import (
    DNS_TEMPFAIL_CODES,
    NULL_MX_RECIPIENT_CODES,
    NULL_MX_SENDER_CODES,
    ReplyTemplate,
)
from nullmx_milter.suggest import LearnedDomains, Suggester, Suggestion


@dataclass(frozen=True)
class Runtime:
    """Everything one config implies. A check reads it once and uses only it."""

    config: Config
    engine: NullMxEngine
    # The MX source the engine's lookups query (the DNS resolver, or a fake in tests), its
    # cache and its health record: kept across reloads that leave the DNS settings alone.
    source: MxSource
    cache: LookupCache
    health: DnsHealth
    # The policy service's one-line replies (Postfix prefixes the address itself).
    policy_service_replies: ReplyTemplates
    # Per-domain tallies (learned "did you mean" candidates, top rejected and DNS-failing
    # domains): counted since start, so handed from runtime to runtime.
    domains: DomainStats
    nameservers: tuple[str, ...]
    # Where the config came from (None: the embedded defaults) and when it was loaded.
    config_path: Path | None
    loaded_at: float

    @property
    def policy(self) -> NullMxPolicy:
        return self.engine.policy

    def probe_settings(self) -> ProbeSettings:
        """What the DNSSEC validation probe asks (through this runtime's resolver), how often."""
        dns = self.config.dns
        resolver = self.source if isinstance(self.source, MxResolver) else None
        return ProbeSettings(dns.dnssec, dns.dnssec_probe, dns.dnssec_probe_interval, resolver)


class RuntimeHolder:
    """The runtime in force; a reload replaces it with one reference assignment."""

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime


def cache_limits(config: Config) -> CacheLimits:
    cache = config.cache
    return CacheLimits(cache.max_entries, cache.min_ttl, cache.max_ttl, cache.failure_ttl)


def recipient_templates(replies: RepliesConfig) -> ReplyTemplates:
    """The milter's annotated multi-line replies."""
    return ReplyTemplates(
        recipient=ReplyTemplate(*NULL_MX_RECIPIENT_CODES, replies.recipient),
        sender=ReplyTemplate(*NULL_MX_SENDER_CODES, replies.sender),
        tempfail=ReplyTemplate(*DNS_TEMPFAIL_CODES, replies.tempfail),
    )


def policy_service_templates(service: PolicyServiceConfig) -> ReplyTemplates:
    """The policy service's single-line replies."""
    return ReplyTemplates(
        recipient=ReplyTemplate(*NULL_MX_RECIPIENT_CODES, (service.recipient_reply,)),
        sender=ReplyTemplate(*NULL_MX_SENDER_CODES, (service.sender_reply,)),
        tempfail=ReplyTemplate(*DNS_TEMPFAIL_CODES, (service.tempfail_reply,)),
    )


def build_runtime(
    config: Config,
    metrics: Metrics,
    *,
    previous: Runtime | None = None,
    source: MxSource | None = None,
    config_path: Path | None = None,
) -> Runtime:
    """The runtime for `config`; no sockets are opened.

    When `previous` queried the same nameservers with the same timeout, its resolver, cache
    and DNS health record carry over (given the new cache and fail-fast settings). Otherwise
    they start afresh: cached answers and health figures were about servers no longer asked,
    and a connection still on `previous` keeps filling only its own cache. `source` replaces
    the DNS resolver as the MX source (tests use a fake).
    """
    dns = config.dns
    check_dns_trust(config)
    limits = cache_limits(config)
    if previous is not None and _lookup_settings(previous.config.dns) == _lookup_settings(dns):
        source = source or previous.source
        cache, health = previous.cache, previous.health
        cache.configure(limits)
        health.configure(dns.fail_fast_after, dns.probe_interval)
    else:
        source = source or MxResolver(
            dns.nameservers, dns.timeout, dnssec=dns.dnssec is DnssecMode.REQUIRE
        )
        cache = LookupCache(limits.max_entries, limits.min_ttl, limits.max_ttl, limits.failure_ttl)
        health = DnsHealth(dns.fail_fast_after, dns.probe_interval)
    policy_config = config.policy
    suggestions = config.suggestions
    if previous is not None:
        domains = previous.domains
        domains.learned.configure(suggestions.learned_domains, suggestions.learned_min_count)
    else:
        domains = DomainStats(
            LearnedDomains(suggestions.learned_domains, suggestions.learned_min_count)
        )
    lookups = MxLookupService(source, cache, health, metrics)
    policy = NullMxPolicy(
        policy_config.mode,
        policy_config.on_dns_error,
        policy_config.sender_null_mx,
        policy_config.allowlist,
        recipient_templates(policy_config.replies),
        dnssec=dns.dnssec,
        suggest=_suggest(suggestions, domains.learned, lookups),
        header_from=policy_config.header_from_null_mx,
        header_from_template=ReplyTemplate(
            *NULL_MX_SENDER_CODES, policy_config.replies.header_from
        ),
    )
    return Runtime(
        config=config,
        engine=NullMxEngine(policy, lookups, metrics, domains=domains),
        domains=domains,
        source=source,
        cache=cache,
        health=health,
        policy_service_replies=policy_service_templates(config.policy_service),
        nameservers=source.nameservers if isinstance(source, MxResolver) else (),
        config_path=config_path,
        loaded_at=time.time(),
    )


def _suggest(
    suggestions: SuggestionsConfig, learned: LearnedDomains, lookups: MxLookupService
) -> Callable[[str], Suggestion] | None:
    """What the policy asks on the reject path, or None when suggestions are off."""
    if not suggestions.enabled:
        return None
    suggester = Suggester((*suggestions.providers, *suggestions.extra_providers), learned)

    def suggest(domain: str) -> Suggestion:
        return suggester.suggest(domain, lookups.refuses_mail)

    return suggest


def _lookup_settings(dns: DnsConfig) -> tuple[object, ...]:
    # dnssec too: its queries differ, and so do the cached lookups' authenticated flags.
    return (dns.nameservers, dns.timeout, dns.dnssec)


def check_dns_trust(config: Config) -> None:
    """Raise ConfigError naming dns.nameservers when the AD bit cannot be trusted from the
    resolvers `config` uses (docs/security.md "DNSSEC"); reads /etc/resolv.conf when none is set."""
    dns = config.dns
    configured = tuple(server.host for server in dns.nameservers)
    problem = trust_problem(dns.dnssec, configured, dns.resolver_path_trusted)
    if problem:
        raise ConfigError("dns.nameservers", problem)


# Settings bound to an open socket or to the log handlers set up at start: a reload reports
# a change to them as "needs restart" and keeps the running value.
_RESTART_SETTINGS: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("milter.socket", lambda config: config.milter.socket),
    ("milter.socket_mode", lambda config: config.milter.socket_mode),
    ("milter.name", lambda config: config.milter.name),
    ("metrics.listen", lambda config: config.metrics.listen),
    ("policy_service.listen", lambda config: config.policy_service.listen),
    ("log.syslog", lambda config: config.log.syslog),
)


def settings_needing_restart(running: Config, loaded: Config) -> tuple[str, ...]:
    """The dotted keys whose new value a reload cannot apply."""
    keys = [key for key, value in _RESTART_SETTINGS if value(running) != value(loaded)]
    # The callbacks libmilter negotiated with the MTA at start cannot change either.
    if _negotiates_senders(running) != _negotiates_senders(loaded):
        keys.append("policy.sender_null_mx")
    if negotiates_headers(running) != negotiates_headers(loaded):
        keys.append("policy.header_from_null_mx")
    return tuple(keys)


def in_force(running: Config, loaded: Config) -> Config:
    """`loaded`, but with the running value of every setting a reload cannot apply."""
    policy = loaded.policy
    if _negotiates_senders(running) != _negotiates_senders(loaded):
        policy = dataclasses.replace(policy, sender_null_mx=running.policy.sender_null_mx)
    if negotiates_headers(running) != negotiates_headers(loaded):
        policy = dataclasses.replace(policy, header_from_null_mx=running.policy.header_from_null_mx)
    return dataclasses.replace(
        loaded,
        milter=running.milter,
        metrics=running.metrics,
        policy_service=dataclasses.replace(
            loaded.policy_service, listen=running.policy_service.listen
        ),
        log=dataclasses.replace(loaded.log, syslog=running.log.syslog),
        policy=policy,
    )


def _negotiates_senders(config: Config) -> bool:
    """Whether the milter negotiates MAIL FROM (fixed for the life of the process)."""
    return config.policy.sender_null_mx is not SenderCheck.OFF


def negotiates_headers(config: Config) -> bool:
    """Whether the milter negotiates the header and end-of-header callbacks (fixed for the
    life of the process: only then does the MTA send headers at all)."""
    return config.policy.header_from_null_mx is not HeaderFromCheck.OFF
