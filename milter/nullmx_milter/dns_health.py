"""Track whether the DNS path works, and stop waiting on it while it plainly does not."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nullmx_milter.mx import MxClass

_RECENT = 100


@dataclass(frozen=True, slots=True)
class DnsHealthSnapshot:
    """Recent DNS figures for the status report."""

    last_success_age: float | None
    last_failure_age: float | None
    recent_lookups: int
    recent_failure_ratio: float
    recent_mean_latency: float
    consecutive_timeouts: int
    failing_fast: bool


class DnsHealth:
    """Counts outcomes and, after `trip_after` timeouts in a row, fails fast.

    While failing fast only one trial query per `probe_interval` goes out; every other
    lookup is answered at once as a timeout (a blocked callback holds one of
    libmilter's pooled workers, and other sessions' commands wait far longer than the lookup
    timeout). `trip_after = 0` never trips.
    """

    def __init__(
        self,
        trip_after: int,
        probe_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trip_after = trip_after
        self._probe_interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive_timeouts = 0
        self._next_probe = 0.0
        self._last_success: float | None = None
        self._last_failure: float | None = None
        self._recent: deque[tuple[bool, float]] = deque(maxlen=_RECENT)

    def configure(self, trip_after: int, probe_interval: float) -> None:
        """New fail-fast settings (a reload); the count of timeouts in a row stays."""
        with self._lock:
            self._trip_after = trip_after
            self._probe_interval = probe_interval

    def _tripped(self) -> bool:
        return 0 < self._trip_after <= self._consecutive_timeouts

    def allow_query(self) -> bool:
        """Whether a query may go out now (always, unless failing fast between probes)."""
        if not self._tripped():
            return True
        with self._lock:
            now = self._clock()
            if now < self._next_probe:
                return False
            self._next_probe = now + self._probe_interval
            return True

    def record(self, mx_class: MxClass, seconds: float) -> None:
        """Note the outcome of a query that went out."""
        with self._lock:
            failed = mx_class.is_failure
            self._recent.append((failed, seconds))
            if mx_class is MxClass.TIMEOUT:
                self._consecutive_timeouts += 1
                if self._consecutive_timeouts == self._trip_after:
                    self._next_probe = self._clock() + self._probe_interval
            else:
                self._consecutive_timeouts = 0
            if failed:
                self._last_failure = self._clock()
            else:
                self._last_success = self._clock()

    def snapshot(self) -> DnsHealthSnapshot:
        """The figures as they stand."""
        with self._lock:
            recent = list(self._recent)
            now = self._clock()
            failures = sum(1 for failed, _ in recent if failed)
            return DnsHealthSnapshot(
                last_success_age=None if self._last_success is None else now - self._last_success,
                last_failure_age=None if self._last_failure is None else now - self._last_failure,
                recent_lookups=len(recent),
                recent_failure_ratio=failures / len(recent) if recent else 0.0,
                recent_mean_latency=sum(s for _, s in recent) / len(recent) if recent else 0.0,
                consecutive_timeouts=self._consecutive_timeouts,
                failing_fast=self._tripped(),
            )
