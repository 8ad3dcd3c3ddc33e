"""DnsHealth: the fail-fast breaker and the figures of the status report, on a fake clock."""

from __future__ import annotations

import pytest

from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.mx import MxClass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(trip_after: int = 3, probe_interval: float = 2.0) -> tuple[DnsHealth, Clock]:
    clock = Clock()
    return DnsHealth(trip_after, probe_interval, clock=clock), clock


def timeouts(health: DnsHealth, count: int) -> None:
    for _ in range(count):
        health.record(MxClass.TIMEOUT, 1.0)


def test_a_fresh_tracker_allows_queries_and_reports_nothing() -> None:
    health, _clock = make()
    assert health.allow_query()
    snapshot = health.snapshot()
    assert snapshot.last_success_age is None
    assert snapshot.last_failure_age is None
    assert snapshot.recent_lookups == 0
    assert snapshot.recent_failure_ratio == 0.0
    assert snapshot.recent_mean_latency == 0.0
    assert snapshot.consecutive_timeouts == 0
    assert snapshot.failing_fast is False


def test_trips_after_exactly_trip_after_timeouts_in_a_row() -> None:
    health, _clock = make(trip_after=3)
    timeouts(health, 2)
    assert health.allow_query()
    assert health.allow_query()
    assert not health.snapshot().failing_fast
    timeouts(health, 1)
    assert health.snapshot().failing_fast
    # Tripped: the first probe is due a probe_interval after the trip, not at once.
    assert not health.allow_query()


def test_one_probe_per_interval_while_tripped() -> None:
    health, clock = make(trip_after=2, probe_interval=2.0)
    timeouts(health, 2)
    clock.now += 1.999
    assert not health.allow_query()
    clock.now += 0.001
    assert health.allow_query()  # the trial query, exactly when due
    assert not health.allow_query()  # only one per interval
    clock.now += 1.999
    assert not health.allow_query()
    clock.now += 0.001
    assert health.allow_query()


def test_more_timeouts_while_tripped_do_not_move_the_next_probe() -> None:
    health, clock = make(trip_after=2, probe_interval=2.0)
    timeouts(health, 2)
    clock.now += 1.0
    timeouts(health, 1)  # a probe that timed out again
    clock.now += 1.0
    assert health.allow_query()
    assert health.snapshot().consecutive_timeouts == 3


@pytest.mark.parametrize(
    "answer",
    [MxClass.NULL_MX, MxClass.MX, MxClass.NXDOMAIN, MxClass.SERVFAIL, MxClass.ERROR],
)
def test_any_answer_but_a_timeout_resets_the_breaker(answer: MxClass) -> None:
    health, _clock = make(trip_after=2)
    timeouts(health, 2)
    assert health.snapshot().failing_fast
    health.record(answer, 0.01)
    assert not health.snapshot().failing_fast
    assert health.snapshot().consecutive_timeouts == 0
    assert health.allow_query()
    # And it takes trip_after new timeouts to trip again.
    timeouts(health, 1)
    assert health.allow_query()


def test_trip_after_zero_never_trips() -> None:
    health, _clock = make(trip_after=0)
    timeouts(health, 50)
    assert health.allow_query()
    assert not health.snapshot().failing_fast
    assert health.snapshot().consecutive_timeouts == 50


def test_snapshot_figures() -> None:
    health, clock = make(trip_after=5)
    health.record(MxClass.NULL_MX, 0.010)
    clock.now += 3.0
    health.record(MxClass.SERVFAIL, 0.020)
    clock.now += 1.0
    health.record(MxClass.MX, 0.030)
    health.record(MxClass.TIMEOUT, 0.340)
    clock.now += 2.0
    snapshot = health.snapshot()
    assert snapshot.recent_lookups == 4
    assert snapshot.recent_failure_ratio == 0.5
    assert snapshot.recent_mean_latency == pytest.approx(0.1)
    assert snapshot.last_success_age == 2.0
    assert snapshot.last_failure_age == 2.0
    assert snapshot.consecutive_timeouts == 1
    assert snapshot.failing_fast is False
    clock.now += 5.0
    later = health.snapshot()
    assert (later.last_success_age, later.last_failure_age) == (7.0, 7.0)


def test_ages_follow_the_last_of_each_kind() -> None:
    health, clock = make()
    health.record(MxClass.MX, 0.01)
    clock.now += 4.0
    health.record(MxClass.ERROR, 0.01)
    clock.now += 1.0
    snapshot = health.snapshot()
    assert snapshot.last_success_age == 5.0
    assert snapshot.last_failure_age == 1.0


def test_recent_figures_cover_the_last_hundred_lookups() -> None:
    health, _clock = make(trip_after=0)
    for _ in range(100):
        health.record(MxClass.SERVFAIL, 1.0)
    for _ in range(100):
        health.record(MxClass.MX, 0.5)
    snapshot = health.snapshot()
    assert snapshot.recent_lookups == 100
    assert snapshot.recent_failure_ratio == 0.0
    assert snapshot.recent_mean_latency == 0.5
    health.record(MxClass.SERVFAIL, 0.5)
    assert health.snapshot().recent_lookups == 100
    assert health.snapshot().recent_failure_ratio == 0.01


def test_trip_after_one_trips_on_the_first_timeout() -> None:
    health, _clock = make(trip_after=1)
    timeouts(health, 1)
    assert health.snapshot().failing_fast
    assert not health.allow_query()


def test_new_settings_apply_to_the_timeouts_already_counted() -> None:
    health, clock = make(trip_after=3, probe_interval=2.0)
    timeouts(health, 2)
    assert health.allow_query() and not health.snapshot().failing_fast
    health.configure(2, 5.0)
    assert health.snapshot().failing_fast
    assert health.allow_query()  # the probe
    clock.now += 4.9
    assert not health.allow_query()
    clock.now += 0.1
    assert health.allow_query()
    health.configure(0, 5.0)
    assert not health.snapshot().failing_fast
