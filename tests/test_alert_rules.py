"""The alerting rules in config/prometheus: promtool checks them and runs their unit tests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from nullmx_milter.metrics import Metrics, runtime_versions

from prometheus_tools import RULES, RULES_TEST, exposed_names, metric_names, promtool

# Metrics of other exporters the rules compare with (documented in the rules file).
FOREIGN_METRICS = {"postfix_smtpd_connects_total"}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        test["alertname"]
        for group in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for test in group["alert_rule_test"]
        if test["exp_alerts"]
    }
    assert tested == {rule["alert"] for rule in rules()}, "every alert has a firing case"


def test_rules_select_only_metrics_the_milter_exports() -> None:
    registry = CollectorRegistry()
    Metrics(registry, runtime_versions("1.0.5", "1.0.1"))
    exported = exposed_names(generate_latest(registry).decode())
    used = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert used - FOREIGN_METRICS <= exported
    assert used >= FOREIGN_METRICS


def test_every_alert_has_severity_and_summary() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        pytest.param(
            'sum by (code) (rate(nullmx_replies_total{code="556"}[$__rate_interval]))',
            {"nullmx_replies_total"},
            id="rate",
        ),
        pytest.param(
            "histogram_quantile(0.99, sum by (le) (rate(nullmx_dns_lookup_seconds_bucket[5m])))",
            {"nullmx_dns_lookup_seconds_bucket"},
            id="quantile",
        ),
        pytest.param(
            "(sum(rate(a_total[15m])) or vector(0)) == 0 and on () b_total offset 10m > 1e3",
            {"a_total", "b_total"},
            id="keywords-offset-number",
        ),
        pytest.param(
            "time() - process_start_time_seconds", {"process_start_time_seconds"}, id="time"
        ),
    ],
)
def test_metric_names_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
