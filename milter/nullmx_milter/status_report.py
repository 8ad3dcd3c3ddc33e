"""The 211 system status report: gather live figures, judge DNS health, render SMTP lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nullmx_milter import __version__
from nullmx_milter.config_reload import ReloadStatus
from nullmx_milter.dns_health import DnsHealthSnapshot
from nullmx_milter.dnssec import DnssecMode, ProbeState
from nullmx_milter.dnssec_probe import DnssecStatus
from nullmx_milter.domain_stats import DomainStats, TopDomains
from nullmx_milter.metrics import Metrics
from nullmx_milter.runtime import RuntimeHolder
from nullmx_milter.top_k import SpaceSaving

STATUS_CODE = "211"
# The DNS path is "failing" when the breaker has tripped, or when at least
# MIN_RECENT_LOOKUPS recent lookups went out, at least FAILURE_RATIO_LIMIT of them failed,
# the newest of them failed and none succeeded for SUCCESS_GRACE seconds. A few broken
# domains (SERVFAIL on their own servers) between successes never make it fail.
MIN_RECENT_LOOKUPS = 5
FAILURE_RATIO_LIMIT = 0.5
SUCCESS_GRACE = 60.0
DNSSEC_OFF = DnssecStatus(DnssecMode.OFF, "", ProbeState.OFF)
# RFC 5321 §4.5.3.1.5: 512 octets per reply line, CRLF included.
_MAX_LINE = 510


def dns_problem(dns: DnsHealthSnapshot) -> str | None:
    """Why the DNS path counts as failing, or None while it works (or nothing is known)."""
    if dns.failing_fast:
        return (
            f"DNS failing fast: {dns.consecutive_timeouts} lookups in a row timed out, "
            "lookups are answered without waiting for DNS"
        )
    if dns.recent_lookups < MIN_RECENT_LOOKUPS or dns.recent_failure_ratio < FAILURE_RATIO_LIMIT:
        return None
    failure_age = dns.last_failure_age
    success_age = dns.last_success_age
    newest_failed = failure_age is not None and (success_age is None or failure_age < success_age)
    if not newest_failed or (success_age is not None and success_age <= SUCCESS_GRACE):
        return None
    since = "ever" if success_age is None else f"for {_duration(success_age)}"
    return (
        f"DNS failing: {dns.recent_failure_ratio:.0%} of the last {dns.recent_lookups} "
        f"lookups failed, none succeeded {since}"
    )


@dataclass(frozen=True, slots=True)
class StatusFacts:
    """Everything the report shows, read from the running daemon at one moment."""

    versions: Mapping[str, str]
    uptime: float
    socket: str
    nameservers: tuple[str, ...]
    dns_timeout: float
    dns: DnsHealthSnapshot
    cache_entries: int
    cache_max_entries: int
    cache_requests: Mapping[str, float]
    replies: Mapping[tuple[str, str], float]
    recipients: Mapping[str, float]
    policy_service: str = ""
    frontend_replies: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    dnssec: DnssecStatus = field(default_factory=lambda: DNSSEC_OFF)
    config_path: str = ""
    # Unix time the config in force was loaded; the clock is the wall clock's.
    config_loaded_at: float = 0.0
    now: float = 0.0
    reload: ReloadStatus = field(default_factory=ReloadStatus)
    # None hides the list (status top_domains = 0).
    top_rejected: TopDomains | None = None
    top_dns_failing: TopDomains | None = None
    suggestions: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The report's lines (without the code), the same as a JSON object, and why unhealthy."""

    problem: str | None
    lines: tuple[str, ...]
    document: Mapping[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.problem is None

    def text(self) -> str:
        """The multi-line 211 reply: `211-` on every line but the last, `211 ` on the last."""
        last = len(self.lines) - 1
        return "".join(
            _fit(f"{STATUS_CODE}{' ' if index == last else '-'}{line}") + "\n"
            for index, line in enumerate(self.lines)
        )

    def json(self) -> str:
        """The report as one JSON object (see docs/operations.md "Status report as JSON")."""
        return json.dumps(self.document, indent=2, sort_keys=False) + "\n"


def build_report(facts: StatusFacts) -> StatusReport:
    """Judge and render `facts`."""
    problems = [found for found in (dns_problem(facts.dns), facts.dnssec.problem) if found]
    problem = "; ".join(problems) if problems else None
    version = facts.versions.get("version", __version__)
    others = ", ".join(
        f"{name} {value}" for name, value in facts.versions.items() if name != "version"
    )
    dns = facts.dns
    hits = facts.cache_requests.get("hit", 0.0)
    served = sum(facts.cache_requests.values())
    cache_counts = ", ".join(
        f"{name} {_count(value)}" for name, value in facts.cache_requests.items()
    )
    lines = (
        f"nullmx-milter {version}: " + ("ok" if problem is None else f"UNHEALTHY: {problem}"),
        f"versions: {others}",
        f"uptime: {_duration(facts.uptime)}",
        f"socket: {facts.socket}",
        f"config: {facts.config_path or 'embedded defaults'}, loaded "
        f"{_ago(facts.now - facts.config_loaded_at)}",
        "last failed reload: " + _reload_failure(facts),
        "needs restart: " + (", ".join(facts.reload.needs_restart) or "nothing"),
        f"policy service: {facts.policy_service or 'off'}",
        f"dns nameservers: {', '.join(facts.nameservers) or 'system resolver'}"
        f" (timeout {facts.dns_timeout:g} s)",
        f"dns health: {_dns_state(dns, problem)}; last success {_ago(dns.last_success_age)}; "
        f"last failure {_ago(dns.last_failure_age)}; recent failures "
        f"{round(dns.recent_failure_ratio * dns.recent_lookups)} of {dns.recent_lookups} "
        f"({dns.recent_failure_ratio:.0%}); mean latency {dns.recent_mean_latency * 1000:.1f} ms; "
        f"timeouts in a row {dns.consecutive_timeouts}",
        _dnssec_line(facts.dnssec),
        f"cache: {facts.cache_entries} of {facts.cache_max_entries} entries; {cache_counts}"
        f" (hit ratio {hits / served if served else 0.0:.1%})",
        "replies: "
        + ", ".join(
            f"{code} {enhanced} = {_count(value)}"
            for (code, enhanced), value in facts.replies.items()
        ),
        "replies by front end: "
        + (
            ", ".join(
                f"{frontend} {code} {enhanced} = {_count(value)}"
                for (frontend, code, enhanced), value in facts.frontend_replies.items()
                if value
            )
            or "none"
        ),
        "recipients: "
        + ", ".join(f"{verdict} {_count(value)}" for verdict, value in facts.recipients.items()),
        *(
            ["suggestions: " + ", ".join(f"{k} {_count(v)}" for k, v in facts.suggestions.items())]
            if facts.suggestions
            else []
        ),
        *_top_lines("top rejected domains", facts.top_rejected),
        *_top_lines("top DNS-failing domains", facts.top_dns_failing),
        "end of status",
    )
    return StatusReport(problem, lines, _document(facts, problem, version))


def _top_lines(title: str, top: TopDomains | None) -> list[str]:
    """One line per tally; per domain, the count and how far above the truth it may be."""
    if top is None:
        return []
    listed = ", ".join(
        f"{entry.item} {entry.count}" + (f" (+{entry.error} at most)" if entry.error else "")
        for entry in top.entries
    )
    return [
        f"{title} since start (approximate: {top.counters} counters over {top.counted} "
        f"domains, a count is at most {top.max_overcount} too high): {listed or 'none'}"
    ]


def _top_document(top: TopDomains | None) -> dict[str, Any] | None:
    if top is None:
        return None
    return {
        "approximate": True,
        "counted": top.counted,
        "counters": top.counters,
        "max_overcount": top.max_overcount,
        "domains": [
            {"domain": entry.item, "count": entry.count, "max_overcount": entry.error}
            for entry in top.entries
        ],
    }


def _document(facts: StatusFacts, problem: str | None, version: str) -> dict[str, Any]:
    """The report as plain JSON values; ages and durations in seconds, null for never."""
    dns = facts.dns
    served = sum(facts.cache_requests.values())
    return {
        "status": "ok" if problem is None else "unhealthy",
        "problem": problem,
        "version": version,
        "versions": {name: value for name, value in facts.versions.items() if name != "version"},
        "uptime_seconds": round(facts.uptime, 3),
        "socket": facts.socket,
        "policy_service": facts.policy_service or None,
        "dns": {
            "nameservers": list(facts.nameservers),
            "timeout_seconds": facts.dns_timeout,
            "state": _dns_state(dns, problem),
            "last_success_age_seconds": dns.last_success_age,
            "last_failure_age_seconds": dns.last_failure_age,
            "recent_lookups": dns.recent_lookups,
            "recent_failures": round(dns.recent_failure_ratio * dns.recent_lookups),
            "recent_failure_ratio": dns.recent_failure_ratio,
            "mean_latency_seconds": dns.recent_mean_latency,
            "consecutive_timeouts": dns.consecutive_timeouts,
            "failing_fast": dns.failing_fast,
        },
        "dnssec": {
            "mode": facts.dnssec.mode.value,
            "probe": facts.dnssec.probe or None,
            "probe_state": facts.dnssec.state.value,
            "probe_detail": facts.dnssec.detail or None,
            "last_probed_age_seconds": facts.dnssec.last_probed_age,
        },
        "cache": {
            "entries": facts.cache_entries,
            "max_entries": facts.cache_max_entries,
            "requests": {name: int(value) for name, value in facts.cache_requests.items()},
            "hit_ratio": facts.cache_requests.get("hit", 0.0) / served if served else 0.0,
        },
        "replies": [
            {"code": code, "enhanced": enhanced, "count": int(value)}
            for (code, enhanced), value in facts.replies.items()
        ],
        "replies_by_frontend": [
            {"frontend": frontend, "code": code, "enhanced": enhanced, "count": int(value)}
            for (frontend, code, enhanced), value in facts.frontend_replies.items()
        ],
        "recipients": {verdict: int(value) for verdict, value in facts.recipients.items()},
        "suggestions": {outcome: int(value) for outcome, value in facts.suggestions.items()},
        "top_rejected_domains": _top_document(facts.top_rejected),
        "top_dns_failing_domains": _top_document(facts.top_dns_failing),
    }


class StatusSource:
    """Reads the daemon's live parts for a report; cheap, and holds no lock for long.

    The runtime in force is read once per report. DnsHealth.snapshot() copies its recent
    window under its own lock; the cache size and the counters are read without touching
    the lookup path's locks.
    """

    def __init__(
        self,
        runtimes: RuntimeHolder,
        metrics: Metrics,
        *,
        reload_status: Callable[[], ReloadStatus] | None = None,
        dnssec: Callable[[], DnssecStatus] = lambda: DNSSEC_OFF,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._runtimes = runtimes
        self._metrics = metrics
        self._reload_status = reload_status or ReloadStatus
        self._dnssec = dnssec
        self._clock = clock
        self._wall_clock = wall_clock
        self._started = clock()

    def facts(self) -> StatusFacts:
        runtime = self._runtimes.current
        config = runtime.config
        return StatusFacts(
            versions=self._metrics.versions,
            uptime=self._clock() - self._started,
            socket=config.milter.socket,
            nameservers=runtime.nameservers,
            dns_timeout=config.dns.timeout,
            dns=runtime.health.snapshot(),
            cache_entries=len(runtime.cache),
            cache_max_entries=config.cache.max_entries,
            cache_requests=self._metrics.cache_counts(),
            replies=self._metrics.reply_counts(),
            recipients=self._metrics.recipient_counts(),
            policy_service=config.policy_service.listen,
            frontend_replies=self._metrics.frontend_reply_counts(),
            dnssec=self._dnssec(),
            config_path=str(runtime.config_path or ""),
            config_loaded_at=runtime.loaded_at,
            now=self._wall_clock(),
            reload=self._reload_status(),
            top_rejected=_top(runtime.domains.rejected, config.status.top_domains),
            top_dns_failing=_top(runtime.domains.dns_failing, config.status.top_domains),
            suggestions=self._metrics.suggestion_counts(),
        )

    def report(self) -> StatusReport:
        return build_report(self.facts())


def _dnssec_line(status: DnssecStatus) -> str:
    """`dnssec: MODE; probe QUERY STATE (DETAIL) AGE ago`."""
    line = f"dnssec: {status.mode.value}"
    if status.mode is DnssecMode.OFF:
        return line
    if not status.probe:
        return f"{line}; probe off"
    line = f"{line}; probe {status.probe} {status.state.value.replace('_', ' ')}"
    if status.detail:
        line = f"{line} ({status.detail})"
    return f"{line}; last probed {_ago(status.last_probed_age)}"


def _top(tally: SpaceSaving, limit: int) -> TopDomains | None:
    """The `limit` top domains of a tally, or None (hidden) when `limit` is 0."""
    return DomainStats.top(tally, limit) if limit > 0 else None


def _fit(line: str) -> str:
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


def _count(value: float) -> str:
    return f"{value:.0f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_duration(seconds)} ago"


def _reload_failure(facts: StatusFacts) -> str:
    reload = facts.reload
    if reload.last_failure is None or reload.last_failure_at is None:
        return "none"
    return f"{_ago(facts.now - reload.last_failure_at)}: {reload.last_failure}"


def _dns_state(dns: DnsHealthSnapshot, problem: str | None) -> str:
    if problem is not None:
        return "failing fast" if dns.failing_fast else "failing"
    return "no lookups yet" if dns.recent_lookups == 0 else "ok"
