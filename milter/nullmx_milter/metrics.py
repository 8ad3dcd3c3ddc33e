"""Prometheus metrics, registered on an injected registry, every label pre-initialised."""

from __future__ import annotations

import platform
from collections.abc import Callable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from nullmx_milter import __version__
from nullmx_milter.dnssec import ProbeState
from nullmx_milter.header_check import HeaderVerdict
from nullmx_milter.mx import MxClass
from nullmx_milter.policy import Role, Verdict
from nullmx_milter.reply import (
    DNS_TEMPFAIL_CODES,
    NULL_MX_RECIPIENT_CODES,
    NULL_MX_SENDER_CODES,
    Reply,
)
from nullmx_milter.suggest import SuggestionOutcome

# Every reply the engine can build; codes are fixed, only the text is configurable.
REPLY_CODES = (NULL_MX_RECIPIENT_CODES, NULL_MX_SENDER_CODES, DNS_TEMPFAIL_CODES)
CALLBACK_STAGES = ("envfrom", "envrcpt", "header", "eoh", "policy")
# "exim": policy-service requests with reply_format=exim (config/exim/).
FRONTENDS = ("milter", "policy", "exim")
POLICY_REQUEST_RESULTS = ("ok", "malformed")
CACHE_RESULTS = ("hit", "miss", "coalesced")
RELOAD_RESULTS = ("success", "failure")
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Metrics:
    """All of the milter's metrics; children are bound once so the hot path only increments."""

    def __init__(self, registry: CollectorRegistry, versions: dict[str, str]) -> None:
        self.versions = dict(versions)
        replies = Counter(
            "nullmx_replies",
            "SMTP replies emitted, by reply code and enhanced status code.",
            ["code", "enhanced"],
            registry=registry,
        )
        self._replies = {pair: replies.labels(*pair) for pair in REPLY_CODES}
        self._reply_family = replies
        frontend_replies = Counter(
            "nullmx_frontend_replies",
            "SMTP replies emitted, by front end (milter, policy, exim), code and enhanced code.",
            ["frontend", "code", "enhanced"],
            registry=registry,
        )
        self._frontend_reply_family = frontend_replies
        self._frontend_replies = {
            (frontend, *pair): frontend_replies.labels(frontend, *pair)
            for frontend in FRONTENDS
            for pair in REPLY_CODES
        }
        policy_requests = Counter(
            "nullmx_policy_requests",
            "Policy service requests (Postfix, Exim), by result (malformed ones get DUNNO).",
            ["result"],
            registry=registry,
        )
        self._policy_requests = {
            result: policy_requests.labels(result) for result in POLICY_REQUEST_RESULTS
        }
        recipients = Counter(
            "nullmx_recipients",
            "Envelope recipients checked, by verdict.",
            ["verdict"],
            registry=registry,
        )
        self._recipients = {verdict: recipients.labels(verdict.value) for verdict in Verdict}
        self._recipient_family = recipients
        senders = Counter(
            "nullmx_sender_checks",
            "Envelope senders checked, by verdict.",
            ["verdict"],
            registry=registry,
        )
        self._senders = {verdict: senders.labels(verdict.value) for verdict in Verdict}
        lookups = Counter(
            "nullmx_dns_lookups",
            "MX lookups sent to DNS, by result.",
            ["result"],
            registry=registry,
        )
        self._lookups = {mx_class: lookups.labels(mx_class.value) for mx_class in MxClass}
        self._latency = Histogram(
            "nullmx_dns_lookup_seconds",
            "Time to answer an MX lookup, cache hits included.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        cache = Counter(
            "nullmx_cache_requests",
            "MX lookups by how the cache served them (hit, miss, coalesced).",
            ["result"],
            registry=registry,
        )
        self._cache = {result: cache.labels(result) for result in CACHE_RESULTS}
        self._cache_family = cache
        self._cache_entries = Gauge(
            "nullmx_cache_entries", "Domains in the MX cache.", registry=registry
        )
        self._fail_fast = Counter(
            "nullmx_dns_fail_fast",
            "Lookups answered as timeouts without a query while DNS was failing.",
            registry=registry,
        )
        self._active = Gauge(
            "nullmx_milter_connections_active", "Open MTA connections.", registry=registry
        )
        self._connections = Counter(
            "nullmx_milter_connections", "MTA connections accepted.", registry=registry
        )
        errors = Counter(
            "nullmx_callback_errors",
            "Unexpected errors in milter callbacks (the recipient was let through).",
            ["stage"],
            registry=registry,
        )
        self._errors = {stage: errors.labels(stage) for stage in CALLBACK_STAGES}
        unauthenticated = Counter(
            "nullmx_null_mx_unauthenticated",
            "Null MX answers accepted because they were not DNSSEC-authenticated"
            ' (dns.dnssec = "require"), by role.',
            ["role"],
            registry=registry,
        )
        self._unauthenticated = {role: unauthenticated.labels(role.value) for role in Role}
        probe_state = Gauge(
            "nullmx_dnssec_probe_state",
            "The DNSSEC validation probe's last result: 1 for the current state, 0 for the others.",
            ["state"],
            registry=registry,
        )
        self._probe_state = {state: probe_state.labels(state.value) for state in ProbeState}
        # Named as Prometheus names its own (prometheus_config_last_reload_successful, ...).
        self._reload_successful = Gauge(
            "nullmx_config_last_reload_successful",
            "Whether the last config load (start or reload) succeeded.",
            registry=registry,
        )
        self._reload_success_time = Gauge(
            "nullmx_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load (start or reload).",
            registry=registry,
        )
        reloads = Counter(
            "nullmx_config_reloads",
            "Config reloads (SIGUSR1), by result; a failed one leaves the running config.",
            ["result"],
            registry=registry,
        )
        self._reloads = {result: reloads.labels(result) for result in RELOAD_RESULTS}
        suggestions = Counter(
            "nullmx_suggestions",
            'Null-MX rejections by "did you mean" outcome (offered, tie: abstained, none).',
            ["outcome"],
            registry=registry,
        )
        self._suggestions = {
            outcome: suggestions.labels(outcome.value) for outcome in SuggestionOutcome
        }
        self._suggestion_family = suggestions
        header_from = Counter(
            "nullmx_header_from_checks",
            "Messages whose From header was checked at end of headers, by verdict.",
            ["verdict"],
            registry=registry,
        )
        self._header_from = {
            verdict: header_from.labels(verdict.value) for verdict in HeaderVerdict
        }
        Info("nullmx_build", "Versions this milter runs with.", registry=registry).info(versions)
        prometheus_client.ProcessCollector(registry=registry)
        self.registry = registry

    def count_reply(self, reply: Reply, frontend: str) -> None:
        """One SMTP reply was sent to the MTA by `frontend` (one of FRONTENDS)."""
        self._replies[(reply.code, reply.enhanced)].inc()
        self._frontend_replies[(frontend, reply.code, reply.enhanced)].inc()

    def config_loaded(self, unix_time: float) -> None:
        """The config in force was loaded (at start) or reloaded at `unix_time`."""
        self._reload_successful.set(1)
        self._reload_success_time.set(unix_time)

    def count_reload(self, *, succeeded: bool, unix_time: float) -> None:
        """A SIGUSR1 reload ended; a failed one leaves the config in force."""
        self._reloads["success" if succeeded else "failure"].inc()
        if succeeded:
            self.config_loaded(unix_time)
        else:
            self._reload_successful.set(0)

    def count_policy_request(self, result: str) -> None:
        self._policy_requests[result].inc()

    def count_recipient(self, verdict: Verdict) -> None:
        self._recipients[verdict].inc()

    def count_sender(self, verdict: Verdict) -> None:
        self._senders[verdict].inc()

    def count_lookup(self, mx_class: MxClass) -> None:
        self._lookups[mx_class].inc()

    def observe_latency(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def count_cache(self, result: str) -> None:
        self._cache[result].inc()

    def count_fail_fast(self) -> None:
        self._fail_fast.inc()

    def track_cache_size(self, size: Callable[[], float]) -> None:
        self._cache_entries.set_function(size)

    def count_unauthenticated_null_mx(self, role: Role) -> None:
        self._unauthenticated[role].inc()

    def set_dnssec_probe_state(self, current: ProbeState) -> None:
        for state, gauge in self._probe_state.items():
            gauge.set(1 if state is current else 0)

    def connection_opened(self) -> None:
        self._connections.inc()
        self._active.inc()

    def connection_closed(self) -> None:
        self._active.dec()

    def count_callback_error(self, stage: str) -> None:
        self._errors[stage].inc()

    def count_suggestion(self, outcome: SuggestionOutcome) -> None:
        self._suggestions[outcome].inc()

    def count_header_from(self, verdict: HeaderVerdict) -> None:
        self._header_from[verdict].inc()

    def suggestion_counts(self) -> dict[str, float]:
        """Null-MX rejections so far, by suggestion outcome."""
        return {labels["outcome"]: value for labels, value in _totals(self._suggestion_family)}

    def reply_counts(self) -> dict[tuple[str, str], float]:
        """Replies emitted so far, by (code, enhanced), for the status report."""
        return {
            (labels["code"], labels["enhanced"]): value
            for labels, value in _totals(self._reply_family)
        }

    def frontend_reply_counts(self) -> dict[tuple[str, str, str], float]:
        """Replies emitted so far, by (front end, code, enhanced)."""
        return {
            (labels["frontend"], labels["code"], labels["enhanced"]): value
            for labels, value in _totals(self._frontend_reply_family)
        }

    def recipient_counts(self) -> dict[str, float]:
        """Recipients checked so far, by verdict."""
        return {labels["verdict"]: value for labels, value in _totals(self._recipient_family)}

    def cache_counts(self) -> dict[str, float]:
        """Cache requests so far, by result (hit, miss, coalesced)."""
        return {labels["result"]: value for labels, value in _totals(self._cache_family)}


def _totals(counter: Counter) -> list[tuple[dict[str, str], float]]:
    """A counter's `_total` samples; collects only this family, not the process collector."""
    return [
        (sample.labels, sample.value)
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    ]


def runtime_versions(pymilter: str, libmilter: str) -> dict[str, str]:
    """The label values of nullmx_build_info."""
    return {
        "version": __version__,
        "pymilter": pymilter,
        "libmilter": libmilter,
        "python": platform.python_version(),
    }
