"""The From header check through the pymilter adapter (Milter.testctx, fake DNS)."""

from __future__ import annotations

import functools

import Milter
import pytest
from Milter import testctx
from prometheus_client import CollectorRegistry

from nullmx_milter.config import config_from_dict
from nullmx_milter.daemon import build
from nullmx_milter.header_check import HeaderFromCheck
from nullmx_milter.milter_adapter import (
    MAX_FROM_FIELDS,
    NullMxHeaderMilter,
    NullMxMilter,
    NullMxSenderHeaderMilter,
    NullMxSenderMilter,
    milter_class,
)
from nullmx_milter.runtime import negotiates_headers

from fakes import FakeSource


def make_context(
    monkeypatch: pytest.MonkeyPatch, check: HeaderFromCheck = HeaderFromCheck.REJECT
) -> tuple[testctx.TestCtx, CollectorRegistry]:
    config = config_from_dict({"policy": {"header_from_null_mx": check.value}})
    components = build(config, CollectorRegistry(), source=FakeSource())
    runtime = components.runtimes.current
    served = milter_class(runtime.policy.checks_senders, negotiates_headers(runtime.config))
    monkeypatch.setattr(
        Milter, "factory", functools.partial(served, runtime.engine, components.metrics)
    )
    ctx = testctx.TestCtx()
    assert ctx._connect() == Milter.CONTINUE
    assert ctx._envfrom("<s@real.example>") == Milter.CONTINUE
    return ctx, components.metrics.registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def send_headers(ctx: testctx.TestCtx, *headers: tuple[str, str]) -> int:
    for name, value in headers:
        assert ctx._header(name, value) in (Milter.CONTINUE, Milter.NOREPLY)
    return ctx._eoh()


def test_null_mx_from_is_rejected_at_end_of_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch)
    result = send_headers(
        ctx, ("Subject", "hi"), ("From", '"Jane" <jane@null.example>'), ("To", "x@real.example")
    )
    assert result == Milter.REJECT
    assert ctx._reply is not None
    code, enhanced, *lines = ctx._reply
    assert (code, enhanced) == ("550", "5.7.27")
    assert lines[0].startswith("<jane@null.example>: Sender address rejected")
    assert sample(registry, "nullmx_header_from_checks_total", verdict="rejected") == 1
    assert sample(registry, "nullmx_replies_total", code="550", enhanced="5.7.27") == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("From", "jane@real.example")], id="real-mx"),
        pytest.param([("From", "a@null.example, b@real.example")], id="one-real-address"),
        pytest.param([("From", "a@null.example"), ("FROM", "b@real.example")], id="second-from"),
        pytest.param([("From", "=?utf-8?q?a@b?= <a@null.example>")], id="garbage"),
        pytest.param([("Subject", "no from at all")], id="no-from"),
        pytest.param([("From", "a@broken.example")], id="dns-failure"),
        pytest.param([("From", "a@null.example")] * (MAX_FROM_FIELDS + 1), id="too-many-froms"),
    ],
)
def test_anything_less_than_certain_passes(
    monkeypatch: pytest.MonkeyPatch, headers: list[tuple[str, str]]
) -> None:
    ctx, _registry = make_context(monkeypatch)
    assert send_headers(ctx, *headers) == Milter.CONTINUE
    assert ctx._reply is None


def test_state_does_not_leak_into_the_next_message(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, _registry = make_context(monkeypatch)
    ctx._header("From", "a@null.example")
    ctx._priv.abort()  # what libmilter calls when the client aborts the message
    assert send_headers(ctx, ("From", "b@real.example")) == Milter.CONTINUE
    assert send_headers(ctx, ("From", "b@null.example")) == Milter.REJECT


def test_dry_run_lets_it_through_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch, HeaderFromCheck.DRY_RUN)
    assert send_headers(ctx, ("From", "a@null.example")) == Milter.CONTINUE
    assert sample(registry, "nullmx_header_from_checks_total", verdict="would_reject") == 1


def test_a_bug_lets_the_message_through(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, registry = make_context(monkeypatch)
    assert send_headers(ctx, ("From", "a@bug.example")) == Milter.CONTINUE
    assert sample(registry, "nullmx_callback_errors_total", stage="eoh") == 1


def test_header_callbacks_are_negotiated_only_when_the_check_is_on() -> None:
    # protocol_mask() holds the SMFIP_NO* bits pymilter clears: a bit there means "call me".
    for without in (NullMxMilter, NullMxSenderMilter):
        mask = without.protocol_mask()
        assert not mask & Milter.P_NOHDRS and not mask & Milter.P_NOEOH
    for served in (NullMxHeaderMilter, NullMxSenderHeaderMilter):
        mask = served.protocol_mask()
        assert mask & Milter.P_NOHDRS and mask & Milter.P_NOEOH and mask & Milter.P_NORCPT
    assert NullMxSenderHeaderMilter.protocol_mask() & Milter.P_NOMAIL
    assert not NullMxHeaderMilter.protocol_mask() & Milter.P_NOMAIL
    assert milter_class(False, True) is NullMxHeaderMilter
    assert milter_class(True, True) is NullMxSenderHeaderMilter
