"""The engine's per-domain tallies and its From header check, on the runtime the daemon builds."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from nullmx_milter.config import config_from_dict
from nullmx_milter.engine import log_header_decision
from nullmx_milter.header_check import HeaderDecision, HeaderVerdict
from nullmx_milter.metrics import Metrics
from nullmx_milter.policy import Verdict
from nullmx_milter.runtime import Runtime, build_runtime
from nullmx_milter.top_k import SpaceSaving

from fakes import TEST_VERSIONS, ZoneSource


def runtime(**tables: Any) -> Runtime:
    metrics = Metrics(CollectorRegistry(), TEST_VERSIONS)
    return build_runtime(config_from_dict(tables), metrics, source=ZoneSource())


def counts(tally: SpaceSaving) -> dict[str, int]:
    return {entry.item: entry.count for entry in tally.top(100)}


def sample(run: Runtime, name: str, **labels: str) -> float:
    value = run.engine._metrics.registry.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def test_recipients_feed_the_tallies_by_what_dns_said() -> None:
    run = runtime()
    engine = run.engine
    for argument in ["<a@real.test>", "<b@real.test>", "<c@null.test>", "<d@x.broken.test>"]:
        engine.check_recipient(argument)
    engine.check_recipient("<e@implicit.test>")
    engine.check_recipient("<f@nxdomain.test>")
    engine.check_recipient("<g@mixed.test>")
    domains = run.domains
    assert counts(domains.learned.counter) == {"real.test": 2}
    assert counts(domains.rejected) == {"null.test": 1}
    assert counts(domains.dns_failing) == {"x.broken.test": 1}


def test_senders_are_never_learned_and_dry_run_rejections_are_tallied() -> None:
    run = runtime(policy={"mode": "dry-run", "sender_null_mx": "reject"})
    run.engine.check_sender("<a@real.test>")
    decision = run.engine.check_recipient("<b@null.test>")
    assert decision.verdict is Verdict.WOULD_REJECT
    assert counts(run.domains.learned.counter) == {}
    assert counts(run.domains.rejected) == {"null.test": 1}


def test_a_rejection_counts_its_suggestion_outcome() -> None:
    run = runtime()
    decision = run.engine.check_recipient("<c@null.test>")
    assert decision.suggestion is not None
    outcome = decision.suggestion.outcome.value
    assert sample(run, "nullmx_suggestions_total", outcome=outcome) == 1
    run.engine.check_recipient("<d@real.test>")
    assert sum(run.engine._metrics.suggestion_counts().values()) == 1


@pytest.mark.parametrize(
    ("mode", "values", "verdict", "rejected"),
    [
        pytest.param("reject", ["a@null.test"], HeaderVerdict.REJECTED, {"null.test": 1}, id="rej"),
        pytest.param(
            "reject",
            ["a@null.test, b@NULL.test", "c@null10.test"],
            HeaderVerdict.REJECTED,
            {"null.test": 1, "null10.test": 1},
            id="each-domain-once",
        ),
        pytest.param(
            "dry-run", ["a@null.test"], HeaderVerdict.WOULD_REJECT, {"null.test": 1}, id="dry"
        ),
        pytest.param("reject", ["a@real.test"], HeaderVerdict.ACCEPTED, {}, id="accepted"),
        pytest.param(
            "reject", ["a@null.test, b@real.test"], HeaderVerdict.ACCEPTED, {}, id="one-real"
        ),
    ],
)
def test_header_from_is_counted_and_tallied(
    mode: str, values: list[str], verdict: HeaderVerdict, rejected: dict[str, int]
) -> None:
    run = runtime(policy={"header_from_null_mx": mode})
    decision = run.engine.check_header_from(values)
    assert decision.verdict is verdict
    assert sample(run, "nullmx_header_from_checks_total", verdict=verdict.value) == 1
    assert counts(run.domains.rejected) == rejected
    if verdict is HeaderVerdict.REJECTED:
        assert decision.reply is not None
        assert (decision.reply.code, decision.reply.enhanced) == ("550", "5.7.27")
    else:
        assert decision.reply is None


def test_header_decision_log_line(caplog: pytest.LogCaptureFixture) -> None:
    run = runtime(policy={"header_from_null_mx": "reject"})
    rejected = run.engine.check_header_from(["a@null.test, b@null10.test"])
    accepted = run.engine.check_header_from(["a@real.test"])
    with caplog.at_level(logging.DEBUG, logger="nullmx_milter.engine"):
        log_header_decision(rejected, "conn=1 qid=Q1")
        log_header_decision(accepted, lambda: "conn=2 qid=Q2")
        log_header_decision(HeaderDecision(verdict=HeaderVerdict.SKIPPED, reason="none"), "c=3")
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (
            logging.INFO,
            "conn=1 qid=Q1 role=header_from verdict=rejected reason=null_mx"
            " from=null.test,null10.test",
        ),
        (
            logging.DEBUG,
            "conn=2 qid=Q2 role=header_from verdict=accepted reason="
            + accepted.reason
            + " from=real.test",
        ),
        (logging.INFO, "c=3 role=header_from verdict=skipped reason=none from=-"),
    ]


def test_header_decision_is_not_built_below_the_log_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = runtime(policy={"header_from_null_mx": "reject"})
    accepted = run.engine.check_header_from(["a@real.test"])
    asked: list[str] = []

    def context() -> str:
        asked.append("asked")
        return "conn=9"

    with caplog.at_level(logging.INFO, logger="nullmx_milter.engine"):
        log_header_decision(accepted, context)
    assert caplog.records == []
    assert asked == []


def test_unauthenticated_null_mx_answers_are_counted_by_role() -> None:
    run = runtime(
        dns={"dnssec": "require", "nameservers": ["127.0.0.1"]},
        policy={"sender_null_mx": "reject"},
    )
    name = "nullmx_null_mx_unauthenticated_total"
    run.engine.check_recipient("<a@real.test>")
    assert sample(run, name, role="recipient") == 0
    decision = run.engine.check_recipient("<c@null.test>")
    assert (decision.verdict, decision.reason) == (Verdict.ACCEPTED, "null_mx_unauthenticated")
    run.engine.check_sender("<s@null.test>")
    run.engine.check_sender("<t@real.test>")
    assert sample(run, name, role="recipient") == 1
    assert sample(run, name, role="sender") == 1
