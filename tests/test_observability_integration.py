"""The real daemon's /metrics, /status and /healthz, scraped by a real Prometheus."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from http_page import fetch

from daemon_process import CONSOLE_SCRIPT, MilterDaemon
from exposition import metric
from knot import KnotServer
from milter_client import MilterClient
from prometheus_tools import (
    DASHBOARD,
    RULES,
    PrometheusServer,
    exposed_names,
    metric_names,
    promtool,
)

pytestmark = pytest.mark.integration

# Seconds the real-Prometheus test may take, start to stop.
BUDGET = 30.0


class Daemons:
    """The module's daemons, each with its own traffic so that tests can run in any order:
    `ok` (working DNS), `servfail` (every lookup fails), `scraped` (for Prometheus)."""

    def __init__(self, workdir: Path, knot: KnotServer) -> None:
        for name in ("ok", "servfail", "scraped"):
            (workdir / name).mkdir()
        self.ok = MilterDaemon(workdir / "ok", [knot.nameserver])
        self.servfail = MilterDaemon(workdir / "servfail", [knot.nameserver])
        self.scraped = MilterDaemon(workdir / "scraped", [knot.nameserver])
        self.nameserver = knot.nameserver

    def all(self) -> tuple[MilterDaemon, ...]:
        return self.ok, self.servfail, self.scraped

    def start(self) -> Daemons:
        try:
            for daemon in self.all():
                daemon.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # Each takes ~5 s to stop (libmilter); stop them side by side.
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(MilterDaemon.stop, self.all()))


@pytest.fixture(scope="module")
def daemons(knot: KnotServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemons]:
    started = Daemons(tmp_path_factory.mktemp("observed"), knot).start()
    with MilterClient(started.ok.milter_port) as client:
        for recipient in ("<a@null.test>", "<b@real.test>", "<c@x.broken.test>", "<postmaster>"):
            client.rcpt(recipient)
    with MilterClient(started.servfail.milter_port) as client:
        for index in range(5):
            assert client.rcpt(f"<a@host{index}.broken.test>").kind == "continue"
    yield started
    started.stop()


def get(url: str) -> tuple[int, str]:
    page = fetch(url)
    return page.status, page.body


def test_live_metrics_pass_promtool_check_metrics(daemons: Daemons) -> None:
    text = daemons.ok.metrics_text()
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
    assert metric(text, "nullmx_dns_lookup_seconds_count") == 3
    assert metric(text, "process_start_time_seconds") > 0


def test_live_status_and_healthz(daemons: Daemons) -> None:
    daemon = daemons.ok
    base = f"http://127.0.0.1:{daemon.metrics_port}"
    status, text = get(f"{base}/status")
    assert status == 200, text
    lines = text.splitlines()
    assert lines[0].startswith("211-nullmx-milter ") and lines[0].endswith(": ok")
    assert all(line.startswith("211-") for line in lines[:-1])
    assert lines[-1].startswith("211 ")
    assert f"211-socket: inet:{daemon.milter_port}@127.0.0.1\n" in text
    assert f"211-dns nameservers: {daemons.nameserver} (timeout 1 s)\n" in text
    assert "recent failures 1 of 3 (33%)" in text
    assert "211-replies: 556 5.1.10 = 1, 550 5.7.27 = 0, 451 4.4.3 = 0\n" in text
    assert (
        "accepted 2, rejected 1, tempfailed 0, would_reject 0, would_tempfail 0, skipped 1" in text
    )
    assert get(f"{base}/healthz") == (200, "ok\n")


def test_live_status_when_dns_fails(daemons: Daemons) -> None:
    base = f"http://127.0.0.1:{daemons.servfail.metrics_port}"
    status, text = get(f"{base}/status")
    assert status == 503
    first = text.splitlines()[0]
    assert first.endswith(
        "UNHEALTHY: DNS failing: 100% of the last 5 lookups failed, none succeeded ever"
    )
    assert get(f"{base}/healthz")[0] == 503


def run_status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONSOLE_SCRIPT, "status", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_status_command_of_the_installed_script(daemons: Daemons) -> None:
    healthy = run_status("--config", str(daemons.ok.config_path))
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.splitlines()[0].endswith(": ok")
    assert healthy.stdout.splitlines()[-1].startswith("211 ")
    failing = run_status("--url", f"http://127.0.0.1:{daemons.servfail.metrics_port}/")
    assert failing.returncode == 1
    assert "UNHEALTHY: DNS failing" in failing.stdout.splitlines()[0]


def dashboard_queries() -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and template variables."""
    document = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"] for panel in document["panels"] for target in panel.get("targets", [])
    ]
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            definition = variable["definition"]
            assert definition.startswith("label_values(") and definition.endswith(")")
            queries.append(definition.removeprefix("label_values(").split(",")[0])
    return queries


def test_dashboard_is_valid_and_uses_live_metric_names(daemons: Daemons) -> None:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    panel_ids = [panel["id"] for panel in document["panels"]]
    assert len(panel_ids) == len(set(panel_ids))
    titles = {panel["title"] for panel in document["panels"]}
    assert {"Replies by code", "Recipient verdicts", "DNS lookups by result"} <= titles
    assert {"Lookup latency", "Cache hit ratio"} <= titles
    live = exposed_names(daemons.ok.metrics_text())
    used = set().union(*(metric_names(query) for query in dashboard_queries()))
    assert used, "no metric names found"
    assert used <= live, used - live


def test_alert_rules_use_live_metric_names(daemons: Daemons) -> None:
    rules = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))
    live = exposed_names(daemons.ok.metrics_text())
    assert used - live == {"postfix_smtpd_connects_total"}


def test_real_prometheus_scrapes_the_counts(daemons: Daemons, tmp_path: Path) -> None:
    started = time.monotonic()
    daemon = daemons.scraped
    prometheus = PrometheusServer(
        tmp_path, [f"127.0.0.1:{daemon.metrics_port}"], rule_files=[RULES]
    ).start()
    try:
        prometheus.wait_for_value('up{job="nullmx-milter"}', 1.0, 10.0)
        rejected = ["<r1@null.test>", "<r2@null10.test>", "<r3@cname-null.test>", "<r4@null.test>"]
        accepted = ["<a1@real.test>", "<a2@implicit.test>"]
        with MilterClient(daemon.milter_port) as client:
            for recipient in rejected + accepted:
                client.rcpt(recipient)

        def expect(selector: str, value: float) -> None:
            budget = max(0.5, started + BUDGET - 3 - time.monotonic())
            prometheus.wait_for_value(selector, value, budget)

        expect('nullmx_replies_total{code="556",enhanced="5.1.10"}', 4)
        expect('nullmx_recipients_total{verdict="rejected"}', 4)
        expect('nullmx_recipients_total{verdict="accepted"}', 2)
        expect('nullmx_dns_lookups_total{result="null_mx"}', 3)
        expect('nullmx_cache_requests_total{result="hit"}', 1)
        expect("nullmx_dns_lookup_seconds_count", 6)
        expect("nullmx_milter_connections_total", 1)
        # The shipped rules load and are evaluated; every dashboard query is valid PromQL.
        groups = prometheus.api("rules")["groups"]
        assert [group["name"] for group in groups] == ["nullmx-milter"]
        assert all(rule["health"] != "err" for rule in groups[0]["rules"])
        for query in dashboard_queries():
            concrete = query.replace("$__rate_interval", "10s").replace("$instance", ".*")
            prometheus.api("query", query=concrete)
    finally:
        prometheus.stop()
    assert time.monotonic() - started < BUDGET
