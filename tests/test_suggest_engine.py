"""Suggestions through the engine as the runtime builds it: the reject path only, learned
from accepts, never a domain not known to accept mail; the policy service's question."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from nullmx_milter.config import config_from_dict
from nullmx_milter.daemon import build
from nullmx_milter.domain_stats import DomainStats
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass
from nullmx_milter.policy import Verdict
from nullmx_milter.policy_service import PolicyResponder
from nullmx_milter.runtime import RuntimeHolder
from nullmx_milter.suggest import SuggestionOutcome

from fakes import FakeSource

ANSWERS = {
    "gmial.com": MxClass.NULL_MX,
    "gmail.com": MxClass.MX,
    "partner-corp.example": MxClass.MX,
    "partner-crop.example": MxClass.NULL_MX,
    "null.example": MxClass.NULL_MX,
    "allowed-gmial.com": MxClass.NULL_MX,
}


def make_runtimes(
    answers: dict[str, MxClass] | None = None, **tables: dict[str, Any]
) -> tuple[RuntimeHolder, Metrics]:
    config = config_from_dict({"policy": {"sender_null_mx": "reject"}, **tables})
    source = FakeSource(ANSWERS if answers is None else answers)
    components = build(config, CollectorRegistry(), source=source)
    return components.runtimes, components.metrics


def make_engine(
    answers: dict[str, MxClass] | None = None, **tables: dict[str, Any]
) -> tuple[NullMxEngine, Metrics, DomainStats]:
    holder, metrics = make_runtimes(answers, **tables)
    return holder.current.engine, metrics, holder.current.domains


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_provider_typo_gets_the_line_and_is_counted() -> None:
    engine, metrics, domains = make_engine()
    decision = engine.check_recipient("<jane.doe@gmial.com>")
    assert decision.verdict is Verdict.REJECTED
    assert decision.reply is not None
    assert decision.reply.lines[1] == "Did you mean <jane.doe@gmail.com>?"
    assert len(decision.reply.lines) == 4
    assert decision.suggested == "jane.doe@gmail.com"
    assert sample(metrics, "nullmx_suggestions_total", outcome="offered") == 1
    assert [entry.item for entry in domains.rejected.top(5)] == ["gmial.com"]


def test_learned_after_enough_accepts_and_only_from_recipients_with_a_real_mx() -> None:
    engine, metrics, _domains = make_engine(suggestions={"learned_min_count": 3})
    for index in range(2):
        assert (
            engine.check_recipient(f"<u{index}@partner-corp.example>").verdict is Verdict.ACCEPTED
        )
    # As senders they do not count: only recipient domains accepted with a real MX do.
    for _ in range(5):
        engine.check_sender("<s@partner-corp.example>")
    first = engine.check_recipient("<bob@partner-crop.example>")
    assert first.suggestion is not None and first.suggestion.outcome is SuggestionOutcome.NONE
    engine.check_recipient("<u3@partner-corp.example>")
    second = engine.check_recipient("<bob@partner-crop.example>")
    assert second.suggested == "bob@partner-corp.example"
    assert sample(metrics, "nullmx_suggestions_total", outcome="none") == 1


def test_no_suggestion_when_the_cache_knows_the_candidate_refuses_mail() -> None:
    engine, _metrics, _domains = make_engine({**ANSWERS, "gmail.com": MxClass.NULL_MX})
    engine.check_recipient("<x@gmail.com>")  # now cached as a null MX
    decision = engine.check_recipient("<jane@gmial.com>")
    assert decision.suggested == ""
    assert decision.reply is not None and len(decision.reply.lines) == 3


def test_allowlisted_and_accepted_domains_get_no_suggestion_at_all() -> None:
    engine, metrics, _domains = make_engine(
        policy={"sender_null_mx": "reject", "allowlist": ["allowed-gmial.com"]}
    )
    assert engine.check_recipient("<a@allowed-gmial.com>").suggestion is None
    assert engine.check_recipient("<a@gmail.com>").suggestion is None
    assert (
        sum(sample(metrics, "nullmx_suggestions_total", outcome=o.value) for o in SuggestionOutcome)
        == 0
    )


def test_dry_run_computes_it_for_the_log_but_sends_nothing() -> None:
    engine, _metrics, _domains = make_engine(policy={"mode": "dry-run"})
    decision = engine.check_recipient("<jane@gmial.com>")
    assert decision.verdict is Verdict.WOULD_REJECT and decision.reply is None
    assert decision.suggested == "jane@gmail.com"


def test_policy_service_appends_the_question() -> None:
    holder, metrics = make_runtimes()
    service = PolicyResponder(holder, metrics)
    request = {"request": "smtpd_access_policy", "protocol_state": "RCPT"}
    action = service.respond({**request, "recipient": "jane@gmial.com"})
    assert action.startswith("556 5.1.10 gmial.com publishes a null MX record (RFC 7505)")
    assert action.endswith("another way; did you mean <jane@gmail.com>?")
    far = service.respond({**request, "recipient": "a@null.example"})
    assert "did you mean" not in far
    # Postfix puts "<address>: Recipient address rejected: " in front: a line that would
    # not fit in 512 octets goes without the question.
    long_local = "x" * 200
    long = service.respond({**request, "recipient": f"{long_local}@gmial.com"})
    assert long.startswith("556 5.1.10 ") and "did you mean" not in long


domain_classes = st.dictionaries(
    st.text(alphabet="abgilmo.", min_size=3, max_size=10),
    st.sampled_from([MxClass.NULL_MX, MxClass.MX, MxClass.NXDOMAIN, MxClass.SERVFAIL]),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(domain_classes, st.lists(st.text(alphabet="abgilmo.", min_size=3, max_size=10), max_size=40))
def test_never_suggests_a_domain_not_known_to_accept_mail(
    answers: dict[str, MxClass], recipients: list[str]
) -> None:
    providers = ("gmail.com", "mail.com", "gmx.com")
    engine, _metrics, _domains = make_engine(
        dict(answers), suggestions={"providers": list(providers), "learned_min_count": 2}
    )
    accepted: dict[str, int] = {}
    looked_up: set[str] = set()
    for domain in recipients:
        decision = engine.check_recipient(f"<u@{domain}>")
        lookup = decision.lookup
        suggestion = decision.suggestion
        if suggestion is not None and suggestion.domain:
            assert decision.verdict is Verdict.REJECTED
            known = set(providers) | {d for d, count in accepted.items() if count >= 2}
            assert suggestion.domain in known
            if suggestion.domain in looked_up:
                # The cache has it: it must not be known to refuse mail.
                refusing = (MxClass.NULL_MX, MxClass.NXDOMAIN)
                assert answers.get(suggestion.domain, MxClass.IMPLICIT) not in refusing
        if lookup is not None:
            looked_up.add(decision.address.domain)
            if decision.verdict is Verdict.ACCEPTED and lookup.mx_class is MxClass.MX:
                accepted[decision.address.domain] = accepted.get(decision.address.domain, 0) + 1


def test_suggestions_off() -> None:
    engine, _metrics, _domains = make_engine(suggestions={"enabled": False})
    decision = engine.check_recipient("<jane@gmial.com>")
    assert decision.suggestion is None
    assert decision.reply is not None and len(decision.reply.lines) == 3


def test_extra_providers_extend_the_list() -> None:
    engine, _metrics, _domains = make_engine(
        {"partner-crop.example": MxClass.NULL_MX, "gmial.com": MxClass.NULL_MX},
        suggestions={"extra_providers": ["partner-corp.example"]},
    )
    assert engine.check_recipient("<bob@partner-crop.example>").suggested == (
        "bob@partner-corp.example"
    )
    assert engine.check_recipient("<jane@gmial.com>").suggested == "jane@gmail.com"
