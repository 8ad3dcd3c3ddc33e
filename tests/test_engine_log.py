"""The decision log line: its level, its fields, and that the context is built only when
the line is logged (it costs a getsymval on the milter's per-recipient path)."""

from __future__ import annotations

import logging

import pytest

from nullmx_milter.address import parse_address
from nullmx_milter.engine import NullMxEngine, log_decision, log_safe
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Decision, Role, Verdict
from nullmx_milter.suggest import NO_SUGGESTION, Suggestion, SuggestionOutcome

from fakes import FakeSource, fake_engine

LOGGER = "nullmx_milter.engine"


@pytest.fixture
def engine() -> NullMxEngine:
    made, _metrics = fake_engine()
    source = made._lookups._source
    assert isinstance(source, FakeSource)
    source.answers["mixed.example"] = MxClass.MIXED
    return made


@pytest.mark.parametrize(
    ("argument", "level", "line"),
    [
        pytest.param(
            "<a@real.example>",
            logging.DEBUG,
            "conn=1 qid=Q role=recipient verdict=accepted reason=mx domain=real.example "
            "mx='fake' problem='' addr='<a@real.example>'",
            id="accepted",
        ),
        pytest.param(
            "<b@null.example>",
            logging.INFO,
            "conn=1 qid=Q role=recipient verdict=rejected reason=null_mx domain=null.example "
            "mx='fake' problem='' addr='<b@null.example>'",
            id="rejected",
        ),
        pytest.param(
            "<c@broken.example>",
            logging.INFO,
            "conn=1 qid=Q role=recipient verdict=accepted reason=servfail "
            "domain=broken.example mx='fake' problem='' addr='<c@broken.example>'",
            id="dns-failure",
        ),
        pytest.param(
            "<d@mixed.example>",
            logging.INFO,
            "conn=1 qid=Q role=recipient verdict=accepted reason=mixed domain=mixed.example "
            "mx='fake' problem='' addr='<d@mixed.example>'",
            id="mixed",
        ),
        pytest.param(
            "<postmaster>",
            logging.DEBUG,
            "conn=1 qid=Q role=recipient verdict=skipped reason=postmaster domain=- mx='' "
            "problem='' addr='<postmaster>'",
            id="skipped",
        ),
        pytest.param(
            "<not an address",
            logging.INFO,
            "conn=1 qid=Q role=recipient verdict=skipped reason=invalid domain=- mx='' "
            "problem='unbalanced angle bracket' addr='<not an address'",
            id="invalid",
        ),
        pytest.param(
            "<e@other.example>\r\n",
            logging.DEBUG,
            "conn=1 qid=Q role=recipient verdict=accepted reason=implicit "
            "domain=other.example mx='fake' problem='' addr='<e@other.example>\\r\\n'",
            id="escaped",
        ),
    ],
)
def test_one_line_per_decision(
    engine: NullMxEngine,
    caplog: pytest.LogCaptureFixture,
    argument: str,
    level: int,
    line: str,
) -> None:
    decision = engine.check_recipient(argument)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        log_decision(decision, Role.RECIPIENT, argument, "conn=1 qid=Q")
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [(level, line)]


def test_plain_accepts_are_not_logged_at_info(
    engine: NullMxEngine, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def context() -> str:
        calls.append("called")
        return "conn=2 qid=-"

    with caplog.at_level(logging.INFO, logger=LOGGER):
        log_decision(engine.check_recipient("<a@real.example>"), Role.RECIPIENT, "a", context)
        assert calls == []
        log_decision(engine.check_recipient("<b@null.example>"), Role.RECIPIENT, "b", context)
    assert calls == ["called"]
    assert [record.getMessage().split(" ")[:4] for record in caplog.records] == [
        ["conn=2", "qid=-", "role=recipient", "verdict=rejected"]
    ]


def test_sender_role_is_named(engine: NullMxEngine, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        log_decision(engine.check_sender("<s@null.example>"), Role.SENDER, "<s>", "ctx")
    assert caplog.records[0].getMessage() == (
        "ctx role=sender verdict=skipped reason=sender_check_off domain=null.example mx='' "
        "problem='' addr='<s>'"
    )


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        pytest.param("4XyZ1234", "4XyZ1234", id="queue-id"),
        pytest.param("a b~", "a b~", id="printable"),
        pytest.param("", "", id="empty"),
        pytest.param("Q\r\nforged", "'Q\\r\\nforged'", id="crlf"),
        pytest.param("bücher", "'b\\xfccher'", id="non-ascii"),
        pytest.param("tab\there", "'tab\\there'", id="tab"),
    ],
)
def test_log_safe(text: str, logged: str) -> None:
    assert log_safe(text) == logged


@pytest.mark.parametrize(
    ("suggestion", "tail"),
    [
        pytest.param(
            Suggestion(SuggestionOutcome.OFFERED, "gmail.com", 1),
            " suggest=offered:gmail.com",
            id="offered",
        ),
        pytest.param(Suggestion(SuggestionOutcome.TIE), " suggest=tie:-", id="tie"),
        pytest.param(NO_SUGGESTION, " suggest=none:-", id="none"),
        pytest.param(None, "", id="not-asked"),
    ],
)
def test_the_suggestion_ends_the_line(
    caplog: pytest.LogCaptureFixture, suggestion: Suggestion | None, tail: str
) -> None:
    address = parse_address("<u@gmial.com>")
    lookup = MxLookup(MxClass.NULL_MX, 60.0, "0 .")
    decision = Decision(Verdict.WOULD_REJECT, "null_mx", address, None, lookup, suggestion)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        log_decision(decision, Role.RECIPIENT, "<u@gmial.com>", "ctx")
    assert [record.getMessage() for record in caplog.records] == [
        "ctx role=recipient verdict=would_reject reason=null_mx domain=gmial.com mx='0 .' "
        "problem='' addr='<u@gmial.com>'" + tail
    ]
