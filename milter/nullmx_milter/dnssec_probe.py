"""The DNSSEC validation probe: whether the resolver validates, asked at start and periodically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from nullmx_milter.dnssec import DnssecMode, ProbeAnswer, ProbeQuery, ProbeState
from nullmx_milter.metrics import Metrics

log = logging.getLogger(__name__)


class ProbeResolver(Protocol):
    """What the probe asks (the lookup path's resolver)."""

    @property
    def nameservers(self) -> tuple[str, ...]: ...

    def probe(self, query: ProbeQuery) -> ProbeAnswer: ...


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """What the current runtime says about probing; `query` None means no probe."""

    mode: DnssecMode
    query: ProbeQuery | None
    interval: float
    # None when lookups go to something else than DNS (a fake in tests): nothing to probe.
    resolver: ProbeResolver | None

    @property
    def active(self) -> bool:
        return (
            self.mode is DnssecMode.REQUIRE and self.query is not None and self.resolver is not None
        )


@dataclass(frozen=True, slots=True)
class DnssecStatus:
    """The DNSSEC line of the status report, and the problem it may be."""

    mode: DnssecMode
    probe: str
    state: ProbeState
    detail: str = ""
    last_probed_age: float | None = None

    @property
    def problem(self) -> str | None:
        """Why the daemon is unhealthy for DNSSEC's sake, or None."""
        if self.mode is not DnssecMode.REQUIRE or self.state is not ProbeState.NOT_VALIDATING:
            return None
        return (
            f"DNSSEC validation unavailable: probe {self.probe} answered without AD "
            f"({self.detail}); every null MX is accepted, none rejected"
        )


@dataclass(frozen=True, slots=True)
class _Result:
    query: ProbeQuery
    state: ProbeState
    detail: str
    at: float


class DnssecProbe:
    """The latest probe result, for the status report and the metric; thread-safe."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._result: _Result | None = None
        metrics.set_dnssec_probe_state(ProbeState.OFF)

    def run_once(self, settings: ProbeSettings) -> ProbeState:
        """Send the probe query now (when `settings` ask for probing) and record the result."""
        query, resolver = settings.query, settings.resolver
        if not settings.active or query is None or resolver is None:
            self._metrics.set_dnssec_probe_state(ProbeState.OFF)
            return ProbeState.OFF
        answer = resolver.probe(query)
        if not answer.answered:
            state = ProbeState.NO_ANSWER
        elif answer.authenticated:
            state = ProbeState.VALIDATING
        else:
            state = ProbeState.NOT_VALIDATING
        with self._lock:
            previous = self._result
            self._result = _Result(query, state, answer.detail, self._clock())
        self._metrics.set_dnssec_probe_state(state)
        _log_result(query, resolver.nameservers, state, answer.detail, previous)
        return state

    def status(self, settings: ProbeSettings) -> DnssecStatus:
        """The probe's state under `settings` (a result for another query counts as none)."""
        query = settings.query
        if not settings.active or query is None:
            return DnssecStatus(settings.mode, str(query or ""), ProbeState.OFF)
        with self._lock:
            result = self._result
        if result is None or result.query != query:
            return DnssecStatus(settings.mode, str(query), ProbeState.PENDING)
        return DnssecStatus(
            settings.mode, str(query), result.state, result.detail, self._clock() - result.at
        )


def _log_result(
    query: ProbeQuery,
    nameservers: tuple[str, ...],
    state: ProbeState,
    detail: str,
    previous: _Result | None,
) -> None:
    servers = ",".join(nameservers) or "system resolver"
    if state is ProbeState.NOT_VALIDATING:
        # As loud as Postfix's dnssec_probe, and saying what it means here.
        log.warning(
            "DNSSEC validation may be unavailable: probe=%s nameservers=%s answered without "
            'the AD bit (%s); with dns.dnssec = "require" every null MX is now accepted, '
            "none rejected",
            query,
            servers,
            detail,
        )
    elif state is ProbeState.NO_ANSWER:
        log.warning(
            "DNSSEC probe got no answer: probe=%s nameservers=%s (%s); validation unknown",
            query,
            servers,
            detail,
        )
    elif previous is None or previous.state is not ProbeState.VALIDATING:
        log.info("DNSSEC validation works: probe=%s nameservers=%s (%s)", query, servers, detail)


class DnssecProber:
    """A thread that probes at start, every interval, and at once when woken (a reload)."""

    def __init__(self, probe: DnssecProbe, settings: Callable[[], ProbeSettings]) -> None:
        self._probe = probe
        self._settings = settings
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dnssec-probe", daemon=True)

    def start(self) -> DnssecProber:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Probe again now (the settings may have changed)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stopping.is_set():
            settings = self._settings()
            try:
                self._probe.run_once(settings)
            except Exception:
                # A bug here must not end the probing (or the process) for good.
                log.exception("DNSSEC probe failed")
            self._wake.wait(settings.interval)
            self._wake.clear()
