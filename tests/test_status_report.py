"""The 211 status report: the health rule, the SMTP form, and the live figures it reads."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from nullmx_milter.cache import LookupCache
from nullmx_milter.config import Config, config_from_dict, load_config
from nullmx_milter.dns_health import DnsHealth, DnsHealthSnapshot
from nullmx_milter.dnssec import DnssecMode, ProbeState
from nullmx_milter.dnssec_probe import DnssecStatus
from nullmx_milter.domain_stats import TopDomains
from nullmx_milter.metrics import Metrics, runtime_versions
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.reply import SMTP_LINE_OCTETS
from nullmx_milter.runtime import RuntimeHolder, build_runtime
from nullmx_milter.status_report import (
    FAILURE_RATIO_LIMIT,
    MIN_RECENT_LOOKUPS,
    SUCCESS_GRACE,
    StatusFacts,
    StatusReport,
    StatusSource,
    build_report,
    dns_problem,
)
from nullmx_milter.top_k import TopEntry

from fakes import FakeSource


def snapshot(
    success_age: float | None = 1.0,
    failure_age: float | None = None,
    lookups: int = 20,
    ratio: float = 0.0,
    in_a_row: int = 0,
    failing_fast: bool = False,
) -> DnsHealthSnapshot:
    return DnsHealthSnapshot(
        last_success_age=success_age,
        last_failure_age=failure_age,
        recent_lookups=lookups,
        recent_failure_ratio=ratio,
        recent_mean_latency=0.002,
        consecutive_timeouts=in_a_row,
        failing_fast=failing_fast,
    )


@pytest.mark.parametrize(
    ("dns", "failing"),
    [
        pytest.param(snapshot(success_age=None, lookups=0), False, id="no-lookups-yet"),
        pytest.param(snapshot(), False, id="all-good"),
        pytest.param(snapshot(in_a_row=7, failing_fast=True), True, id="failing-fast"),
        pytest.param(
            snapshot(success_age=None, failure_age=1.0, lookups=MIN_RECENT_LOOKUPS - 1, ratio=1.0),
            False,
            id="too-few-lookups-to-judge",
        ),
        pytest.param(
            snapshot(success_age=None, failure_age=1.0, lookups=MIN_RECENT_LOOKUPS, ratio=1.0),
            True,
            id="never-succeeded",
        ),
        pytest.param(
            snapshot(success_age=SUCCESS_GRACE + 1, failure_age=0.5, ratio=FAILURE_RATIO_LIMIT),
            True,
            id="half-failed-no-success-in-grace",
        ),
        pytest.param(
            snapshot(success_age=SUCCESS_GRACE - 1, failure_age=0.5, ratio=0.9),
            False,
            id="recent-success-within-grace",
        ),
        pytest.param(
            snapshot(success_age=SUCCESS_GRACE + 1, failure_age=0.5, ratio=0.4),
            False,
            id="few-broken-domains",
        ),
        pytest.param(
            snapshot(success_age=SUCCESS_GRACE + 100, failure_age=SUCCESS_GRACE + 200, ratio=0.9),
            False,
            id="recovered-then-quiet",
        ),
    ],
)
def test_dns_failing_rule(dns: DnsHealthSnapshot, failing: bool) -> None:
    assert (dns_problem(dns) is not None) is failing


def facts(
    dns: DnsHealthSnapshot, nameservers: tuple[str, ...] = ("127.0.0.1:5353",)
) -> StatusFacts:
    return StatusFacts(
        versions=runtime_versions("1.0.5", "1.0.1"),
        uptime=93784.0,
        socket="inet:8894@127.0.0.1",
        nameservers=nameservers,
        dns_timeout=2.0,
        dns=dns,
        cache_entries=3,
        cache_max_entries=100000,
        cache_requests={"hit": 6.0, "miss": 3.0, "coalesced": 1.0},
        replies={("556", "5.1.10"): 4.0, ("550", "5.7.27"): 0.0, ("451", "4.4.3"): 1.0},
        recipients={"accepted": 5.0, "rejected": 4.0},
        policy_service="unix:/var/spool/postfix/private/nullmx-policy",
        frontend_replies={("milter", "556", "5.1.10"): 3.0, ("policy", "556", "5.1.10"): 1.0},
    )


def test_report_is_a_multiline_211_reply() -> None:
    report = build_report(facts(snapshot()))
    assert report.healthy
    lines = report.text().splitlines()
    assert all(line.startswith("211-") for line in lines[:-1])
    assert re.match(r"211 \S", lines[-1])
    text = report.text()
    assert lines[0] == "211-nullmx-milter 1.0.0: ok"
    assert "211-uptime: 1d 02:03:04\n" in text
    assert "211-socket: inet:8894@127.0.0.1\n" in text
    assert "211-policy service: unix:/var/spool/postfix/private/nullmx-policy\n" in text
    assert "211-replies by front end: milter 556 5.1.10 = 3, policy 556 5.1.10 = 1\n" in text
    assert "211-dns nameservers: 127.0.0.1:5353 (timeout 2 s)\n" in text
    assert "last success 1.0 s ago" in text
    assert "recent failures 0 of 20 (0%)" in text
    assert "mean latency 2.0 ms" in text
    assert "211-cache: 3 of 100000 entries; hit 6, miss 3, coalesced 1 (hit ratio 60.0%)" in text
    assert "211-replies: 556 5.1.10 = 4, 550 5.7.27 = 0, 451 4.4.3 = 1\n" in text
    assert "211-recipients: accepted 5, rejected 4\n" in text


def test_unhealthy_report_says_why_on_its_first_line() -> None:
    report = build_report(facts(snapshot(in_a_row=6, failing_fast=True)))
    assert not report.healthy
    first = report.text().splitlines()[0]
    assert first.startswith("211-nullmx-milter 1.0.0: UNHEALTHY: DNS failing fast: 6 lookups")


@pytest.mark.parametrize(
    ("dnssec", "line", "problem"),
    [
        pytest.param(
            DnssecStatus(DnssecMode.OFF, "", ProbeState.OFF), "dnssec: off", None, id="off"
        ),
        pytest.param(
            DnssecStatus(DnssecMode.REQUIRE, "", ProbeState.OFF),
            "dnssec: require; probe off",
            None,
            id="probe-off",
        ),
        pytest.param(
            DnssecStatus(DnssecMode.REQUIRE, "ns:.", ProbeState.PENDING),
            "dnssec: require; probe ns:. pending; last probed never",
            None,
            id="pending",
        ),
        pytest.param(
            DnssecStatus(DnssecMode.REQUIRE, "ns:.", ProbeState.VALIDATING, "NOERROR, AD set", 4.0),
            "dnssec: require; probe ns:. validating (NOERROR, AD set); last probed 4.0 s ago",
            None,
            id="validating",
        ),
        pytest.param(
            DnssecStatus(
                DnssecMode.REQUIRE, "ns:.", ProbeState.NOT_VALIDATING, "NOERROR, AD not set", 4.0
            ),
            "dnssec: require; probe ns:. not validating (NOERROR, AD not set);"
            " last probed 4.0 s ago",
            "DNSSEC validation unavailable: probe ns:. answered without AD",
            id="not-validating",
        ),
    ],
)
def test_dnssec_line_and_health(dnssec: DnssecStatus, line: str, problem: str | None) -> None:
    report = build_report(replace(facts(snapshot()), dnssec=dnssec))
    assert f"211-{line}\n" in report.text()
    document = json.loads(report.json())["dnssec"]
    assert (document["mode"], document["probe_state"]) == (dnssec.mode.value, dnssec.state.value)
    assert document["last_probed_age_seconds"] == dnssec.last_probed_age
    if problem is None:
        assert report.healthy
    else:
        assert report.problem is not None
        assert report.problem.startswith(problem)
        assert report.text().startswith(f"211-nullmx-milter 1.0.0: UNHEALTHY: {problem}")


def test_long_lines_are_cut_to_fit_smtp() -> None:
    many = tuple(f"[2001:db8::{index:x}]:5353" for index in range(60))
    text = build_report(facts(snapshot(), nameservers=many)).text()
    assert all(len(line) + 2 <= SMTP_LINE_OCTETS for line in text.splitlines())
    assert "...\n" in text


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def runtimes(
    config: Config, metrics: Metrics, health: DnsHealth, cache: LookupCache
) -> RuntimeHolder:
    """The runtime the daemon builds for `config`, with these health and cache objects."""
    runtime = build_runtime(config, metrics, source=FakeSource())
    return RuntimeHolder(
        dataclasses.replace(runtime, health=health, cache=cache, nameservers=("127.0.0.1:53",))
    )


def test_source_reads_live_health_cache_and_counters() -> None:
    clock = Clock()
    config = load_config(None)
    metrics = Metrics(CollectorRegistry(), runtime_versions("1.0.5", "1.0.1"))
    health = DnsHealth(3, 1.0, clock=clock)
    cache = LookupCache(10, 5.0, 60.0, 5.0, clock=clock)
    source = StatusSource(runtimes(config, metrics, health, cache), metrics, clock=clock)
    cache.put("null.test", MxLookup(MxClass.NULL_MX, 60.0))
    metrics.count_cache("miss")
    health.record(MxClass.NULL_MX, 0.004)
    clock.now += 90.0
    report = source.report()
    assert report.healthy
    text = report.text()
    assert "211-uptime: 00:01:30\n" in text
    assert "last success 00:01:30 ago; last failure never" in text
    assert "cache: 1 of 100000 entries; hit 0, miss 1, coalesced 0" in text

    for _ in range(3):
        health.record(MxClass.TIMEOUT, 1.0)
    failing = source.report()
    assert not failing.healthy
    assert failing.problem is not None
    assert failing.problem.startswith("DNS failing fast: 3 lookups in a row timed out")
    assert "dns health: failing fast;" in failing.text()
    health.record(MxClass.MX, 0.003)
    assert source.report().healthy


def test_report_is_cheap_and_needs_no_lookup_path_lock() -> None:
    config = load_config(None)
    metrics = Metrics(CollectorRegistry(), runtime_versions("1.0.5", "1.0.1"))
    health = DnsHealth(5, 1.0)
    for _ in range(200):
        health.record(MxClass.MX, 0.002)
    cache = LookupCache(10, 5.0, 60.0, 5.0)
    source = StatusSource(runtimes(config, metrics, health, cache), metrics)
    reports: list[StatusReport] = []
    elapsed: list[float] = []

    def build_many() -> None:
        started = time.perf_counter()
        reports.extend(source.report() for _ in range(100))
        elapsed.append(time.perf_counter() - started)

    # The cache's lock is the lookup path's; a report built while it is held must not wait.
    with cache._lock:
        worker = threading.Thread(target=build_many)
        worker.start()
        worker.join(10)
    assert not worker.is_alive()
    assert len(reports) == 100
    assert elapsed[0] / 100 < 0.005, "a report should take well under 5 ms (~0.1 ms here)"


def top(*entries: tuple[str, int, int], counted: int = 30, counters: int = 1000) -> TopDomains:
    return TopDomains(
        entries=tuple(TopEntry(item, count, error) for item, count, error in entries),
        counted=counted,
        counters=counters,
        max_overcount=-(-counted // counters),
    )


def test_top_domains_in_text_and_json() -> None:
    with_top = replace(
        facts(snapshot()),
        top_rejected=top(("gmial.com", 7, 0), ("nullmx.test", 2, 1)),
        top_dns_failing=top(counted=0),
        suggestions={"offered": 5.0, "tie": 1.0, "none": 3.0},
    )
    report = build_report(with_top)
    text = report.text()
    assert (
        "211-top rejected domains since start (approximate: 1000 counters over 30 domains, "
        "a count is at most 1 too high): gmial.com 7, nullmx.test 2 (+1 at most)\n"
    ) in text
    assert "211-top DNS-failing domains since start (approximate: 1000 counters over 0" in text
    assert "a count is at most 0 too high): none\n" in text
    assert "211-suggestions: offered 5, tie 1, none 3\n" in text
    document = json.loads(report.json())
    assert document["top_rejected_domains"] == {
        "approximate": True,
        "counted": 30,
        "counters": 1000,
        "max_overcount": 1,
        "domains": [
            {"domain": "gmial.com", "count": 7, "max_overcount": 0},
            {"domain": "nullmx.test", "count": 2, "max_overcount": 1},
        ],
    }
    assert document["top_dns_failing_domains"]["domains"] == []
    assert document["suggestions"] == {"offered": 5, "tie": 1, "none": 3}


def test_hidden_top_domains() -> None:
    report = build_report(facts(snapshot()))
    assert "top rejected" not in report.text()
    assert json.loads(report.json())["top_rejected_domains"] is None


def test_json_carries_the_same_figures_as_the_text() -> None:
    report = build_report(facts(snapshot(in_a_row=6, failing_fast=True)))
    document = json.loads(report.json())
    assert document["status"] == "unhealthy"
    assert document["problem"] == report.problem
    assert report.text().startswith(f"211-nullmx-milter {document['version']}: UNHEALTHY")
    assert document["uptime_seconds"] == 93784.0
    assert document["socket"] == "inet:8894@127.0.0.1"
    assert document["policy_service"] == "unix:/var/spool/postfix/private/nullmx-policy"
    assert document["dns"]["nameservers"] == ["127.0.0.1:5353"]
    assert document["dns"]["failing_fast"] is True
    assert document["dns"]["state"] == "failing fast"
    assert document["dns"]["consecutive_timeouts"] == 6
    assert document["cache"] == {
        "entries": 3,
        "max_entries": 100000,
        "requests": {"hit": 6, "miss": 3, "coalesced": 1},
        "hit_ratio": 0.6,
    }
    assert {"code": "556", "enhanced": "5.1.10", "count": 4} in document["replies"]
    assert document["recipients"] == {"accepted": 5, "rejected": 4}
    assert {"frontend": "policy", "code": "556", "enhanced": "5.1.10", "count": 1} in document[
        "replies_by_frontend"
    ]


def test_source_lists_rejected_domains_from_live_tallies() -> None:
    metrics = Metrics(CollectorRegistry(), runtime_versions("1.0.5", "1.0.1"))
    holder = runtimes(
        config_from_dict({"status": {"top_domains": 2}}),
        metrics,
        DnsHealth(3, 1.0),
        LookupCache(10, 5.0, 60.0, 5.0),
    )
    source = StatusSource(holder, metrics)
    domains = holder.current.domains
    for domain in ["a.test"] * 3 + ["b.test"] * 2 + ["c.test"]:
        domains.rejected.add(domain)
    domains.dns_failing.add("broken.test")
    document = source.report().document
    assert [(d["domain"], d["count"]) for d in document["top_rejected_domains"]["domains"]] == [
        ("a.test", 3),
        ("b.test", 2),
    ]
    assert document["top_dns_failing_domains"]["domains"][0]["domain"] == "broken.test"
    # A reload that sets top_domains = 0 hides the lists; the counts stay.
    hidden = build_runtime(
        config_from_dict({"status": {"top_domains": 0}}), metrics, previous=holder.current
    )
    holder.current = hidden
    assert hidden.domains is domains
    assert "top rejected" not in source.report().text()
    assert source.report().document["top_rejected_domains"] is None
