"""The pymilter adapter, offline through Milter.testctx with a fake DNS source."""

from __future__ import annotations

import functools

import Milter
import pytest
from Milter import testctx
from prometheus_client import CollectorRegistry

from nullmx_milter.milter_adapter import NullMxMilter, milter_class
from nullmx_milter.policy import Mode, OnDnsError, SenderCheck

from fakes import fake_engine


def make_context(
    monkeypatch: pytest.MonkeyPatch,
    mode: Mode = Mode.ENFORCE,
    on_dns_error: OnDnsError = OnDnsError.ACCEPT,
    sender: SenderCheck = SenderCheck.OFF,
) -> tuple[testctx.TestCtx, CollectorRegistry]:
    engine, metrics = fake_engine(mode, on_dns_error, sender)
    registry = metrics.registry
    policy = engine.policy
    monkeypatch.setattr(
        Milter, "factory", functools.partial(milter_class(policy.checks_senders), engine, metrics)
    )
    ctx = testctx.TestCtx()
    assert ctx._connect() == Milter.CONTINUE
    return ctx, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"no sample {name} {labels}"
    return value


def test_rejects_only_the_null_mx_recipient(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch)
    assert ctx._envfrom("<s@real.example>") == Milter.CONTINUE
    assert ctx._envrcpt("<a@real.example>") == Milter.CONTINUE
    assert ctx._envrcpt("<b@null.example>") == Milter.REJECT
    assert ctx._reply is not None
    code, enhanced, *lines = ctx._reply
    assert (code, enhanced, len(lines)) == ("556", "5.1.10", 3)
    assert "null.example does not accept mail" in lines[0]
    ctx._reply = None
    assert ctx._envrcpt("<c@real.example>") == Milter.CONTINUE
    assert ctx._reply is None
    assert sample(registry, "nullmx_replies_total", code="556", enhanced="5.1.10") == 1
    assert sample(registry, "nullmx_recipients_total", verdict="accepted") == 2


def test_dry_run_continues_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch, mode=Mode.DRY_RUN)
    assert ctx._envrcpt("<b@null.example>") == Milter.CONTINUE
    assert ctx._reply is None
    assert sample(registry, "nullmx_recipients_total", verdict="would_reject") == 1


def test_dry_run_counts_would_tempfail_and_answers_continue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, registry = make_context(monkeypatch, mode=Mode.DRY_RUN, on_dns_error=OnDnsError.TEMPFAIL)
    assert ctx._envrcpt("<b@broken.example>") == Milter.CONTINUE
    assert ctx._reply is None
    assert sample(registry, "nullmx_recipients_total", verdict="would_tempfail") == 1
    assert sample(registry, "nullmx_recipients_total", verdict="tempfailed") == 0
    assert sample(registry, "nullmx_replies_total", code="451", enhanced="4.4.3") == 0


def test_tempfail_on_dns_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch, on_dns_error=OnDnsError.TEMPFAIL)
    assert ctx._envrcpt("<b@broken.example>") == Milter.TEMPFAIL
    assert ctx._reply is not None
    assert ctx._reply[:2] == ("451", "4.4.3")
    assert sample(registry, "nullmx_replies_total", code="451", enhanced="4.4.3") == 1


def test_a_bug_lets_the_recipient_through(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch, on_dns_error=OnDnsError.TEMPFAIL)
    assert ctx._envrcpt("<b@bug.example>") == Milter.CONTINUE
    assert ctx._reply is None
    assert sample(registry, "nullmx_callback_errors_total", stage="envrcpt") == 1


def test_sender_check(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch, sender=SenderCheck.REJECT)
    assert ctx._envfrom("<>") == Milter.CONTINUE
    assert ctx._envfrom("<bounce@null.example>") == Milter.REJECT
    assert ctx._reply is not None
    assert ctx._reply[:2] == ("550", "5.7.27")
    assert sample(registry, "nullmx_sender_checks_total", verdict="rejected") == 1


def test_negotiation_asks_only_for_rcpt_and_data() -> None:
    # protocol_mask() holds the SMFIP_NO* bits pymilter clears: a bit there means "call me".
    mask = NullMxMilter.protocol_mask()
    assert mask & Milter.P_NORCPT
    assert mask & Milter.P_NODATA
    for unused in (Milter.P_NOCONNECT, Milter.P_NOHELO, Milter.P_NOMAIL, Milter.P_NOBODY):
        assert not mask & unused
    assert milter_class(True).protocol_mask() & Milter.P_NOMAIL
