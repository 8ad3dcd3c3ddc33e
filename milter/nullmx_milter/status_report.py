"""The 211 system status report: gather live figures, judge DNS health, render SMTP lines."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nullmx_milter import __version__
from nullmx_milter.cache import LookupCache
from nullmx_milter.config import Config
from nullmx_milter.dns_health import DnsHealth, DnsHealthSnapshot
from nullmx_milter.dnssec import DnssecMode, ProbeState
from nullmx_milter.dnssec_probe import DnssecStatus
from nullmx_milter.metrics import Metrics

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


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The report's lines (without the code) and, when unhealthy, why."""

    problem: str | None
    lines: tuple[str, ...]

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
        "end of status",
    )
    return StatusReport(problem, lines)


class StatusSource:
    """Reads the daemon's live parts for a report; cheap, and holds no lock for long.

    DnsHealth.snapshot() copies its recent window under its own lock; the cache size and
    the counters are read without touching the lookup path's locks.
    """

    def __init__(
        self,
        config: Config,
        nameservers: tuple[str, ...],
        health: DnsHealth,
        cache: LookupCache,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._nameservers = nameservers
        self._health = health
        self._cache = cache
        self._metrics = metrics
        self._clock = clock
        self._started = clock()

    def facts(self) -> StatusFacts:
        return StatusFacts(
            versions=self._metrics.versions,
            uptime=self._clock() - self._started,
            socket=self._config.milter.socket,
            nameservers=self._nameservers,
            dns_timeout=self._config.dns.timeout,
            dns=self._health.snapshot(),
            cache_entries=len(self._cache),
            cache_max_entries=self._config.cache.max_entries,
            cache_requests=self._metrics.cache_counts(),
            replies=self._metrics.reply_counts(),
            recipients=self._metrics.recipient_counts(),
            policy_service=self._config.policy_service.listen,
            frontend_replies=self._metrics.frontend_reply_counts(),
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


def _dns_state(dns: DnsHealthSnapshot, problem: str | None) -> str:
    if problem is not None:
        return "failing fast" if dns.failing_fast else "failing"
    return "no lookups yet" if dns.recent_lookups == 0 else "ok"
