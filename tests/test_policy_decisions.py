"""NullMxPolicy, whole decisions: verdict, reason, reply and lookup together (they reach the
log line, the metrics and the front ends)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nullmx_milter.address import parse_address
from nullmx_milter.config import RepliesConfig
from nullmx_milter.dnssec import DnssecMode
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import (
    NULL_MX_UNAUTHENTICATED,
    Decision,
    Mode,
    NullMxPolicy,
    OnDnsError,
    Role,
    SenderCheck,
    Verdict,
)
from nullmx_milter.reply import ReplyTemplate
from nullmx_milter.runtime import recipient_templates
from nullmx_milter.suggest import NO_SUGGESTION, Suggestion, SuggestionOutcome

TEMPLATES = recipient_templates(RepliesConfig())
ADDRESS = parse_address("<u@d.example>")


def policy(
    mode: Mode = Mode.ENFORCE,
    on_dns_error: OnDnsError = OnDnsError.ACCEPT,
    sender: SenderCheck = SenderCheck.REJECT,
    allowlist: frozenset[str] = frozenset(),
    *,
    dnssec: DnssecMode = DnssecMode.OFF,
    suggest: Callable[[str], Suggestion] | None = None,
    header_from_template: ReplyTemplate | None = None,
) -> NullMxPolicy:
    return NullMxPolicy(
        mode,
        on_dns_error,
        sender,
        allowlist,
        TEMPLATES,
        dnssec=dnssec,
        suggest=suggest,
        header_from_template=header_from_template,
    )


@pytest.mark.parametrize("role", [Role.RECIPIENT, Role.SENDER])
@pytest.mark.parametrize("on_dns_error", [OnDnsError.ACCEPT, OnDnsError.TEMPFAIL])
@pytest.mark.parametrize("mx_class", list(MxClass))
def test_enforced_decisions(role: Role, on_dns_error: OnDnsError, mx_class: MxClass) -> None:
    lookup = MxLookup(mx_class, 60.0, "detail")
    decision = policy(on_dns_error=on_dns_error).decide(ADDRESS, lookup, role)
    template = TEMPLATES.recipient if role is Role.RECIPIENT else TEMPLATES.sender
    if mx_class is MxClass.NULL_MX:
        reply = template.render(ADDRESS.mailbox, ADDRESS.domain)
        expected = Decision(Verdict.REJECTED, "null_mx", ADDRESS, reply, lookup)
    elif mx_class.is_failure and on_dns_error is OnDnsError.TEMPFAIL:
        reply = TEMPLATES.tempfail.render(ADDRESS.mailbox, ADDRESS.domain)
        expected = Decision(Verdict.TEMPFAILED, mx_class.value, ADDRESS, reply, lookup)
    else:
        expected = Decision(Verdict.ACCEPTED, mx_class.value, ADDRESS, lookup=lookup)
    assert decision == expected


@pytest.mark.parametrize(
    ("made", "role"),
    [
        pytest.param(policy(mode=Mode.DRY_RUN), Role.RECIPIENT, id="dry-run"),
        pytest.param(policy(mode=Mode.DRY_RUN), Role.SENDER, id="dry-run-sender"),
        pytest.param(policy(sender=SenderCheck.DRY_RUN), Role.SENDER, id="sender-dry-run"),
    ],
)
def test_dry_runs_would_reject(made: NullMxPolicy, role: Role) -> None:
    lookup = MxLookup(MxClass.NULL_MX, 60.0, "0 .")
    assert made.decide(ADDRESS, lookup, role) == Decision(
        Verdict.WOULD_REJECT, "null_mx", ADDRESS, lookup=lookup
    )


def test_sender_dry_run_still_enforces_recipients() -> None:
    lookup = MxLookup(MxClass.NULL_MX, 60.0, "0 .")
    decision = policy(sender=SenderCheck.DRY_RUN).decide(ADDRESS, lookup, Role.RECIPIENT)
    assert decision.verdict is Verdict.REJECTED


@pytest.mark.parametrize(
    ("argument", "role", "sender", "expected"),
    [
        pytest.param("<u@d.example>", Role.SENDER, SenderCheck.OFF, "sender_check_off", id="off"),
        pytest.param("<>", Role.RECIPIENT, SenderCheck.OFF, "null_path", id="null-path"),
        pytest.param("<postmaster>", Role.RECIPIENT, SenderCheck.OFF, "postmaster", id="pm"),
        pytest.param("<user>", Role.RECIPIENT, SenderCheck.OFF, "no_domain", id="no-domain"),
        pytest.param("<u@[192.0.2.1]>", Role.SENDER, SenderCheck.REJECT, "literal", id="literal"),
        pytest.param("<u@@>", Role.RECIPIENT, SenderCheck.OFF, "invalid", id="invalid"),
    ],
)
def test_skipped_before_any_lookup(
    argument: str, role: Role, sender: SenderCheck, expected: str
) -> None:
    address = parse_address(argument)
    assert policy(sender=sender).pre_lookup(address, role) == Decision(
        Verdict.SKIPPED, expected, address
    )


@pytest.mark.parametrize(
    ("domain", "listed"),
    [
        pytest.param("allowed.example", True, id="listed"),
        pytest.param("a.allowed.example", True, id="child"),
        pytest.param("a.b.allowed.example", True, id="grandchild"),
        pytest.param("notallowed.example", False, id="suffix-not-a-label"),
        pytest.param("allowed.example.org", False, id="listed-is-a-prefix"),
        pytest.param("example", False, id="parent"),
        pytest.param("tld", True, id="single-label-listed"),
        pytest.param("a.tld", True, id="child-of-single-label"),
        pytest.param("other.example", False, id="unrelated"),
    ],
)
def test_allowlist(domain: str, listed: bool) -> None:
    made = policy(allowlist=frozenset({"allowed.example", "tld"}))
    assert made.is_allowlisted(domain) is listed
    address = parse_address(f"<u@{domain}>")
    expected = Decision(Verdict.ACCEPTED, "allowlisted", address) if listed else None
    assert made.pre_lookup(address, Role.RECIPIENT) == expected


def test_an_empty_allowlist_lists_nothing() -> None:
    assert not policy().is_allowlisted("")
    assert not policy().is_allowlisted("example")


@pytest.mark.parametrize(
    ("sender", "checks"),
    [(SenderCheck.OFF, False), (SenderCheck.REJECT, True), (SenderCheck.DRY_RUN, True)],
)
def test_checks_senders(sender: SenderCheck, checks: bool) -> None:
    assert policy(sender=sender).checks_senders is checks


@pytest.mark.parametrize("mx_class", [mx for mx in MxClass if mx.is_failure])
@pytest.mark.parametrize(
    ("made", "role"),
    [
        pytest.param(policy(Mode.DRY_RUN, OnDnsError.TEMPFAIL), Role.RECIPIENT, id="dry-run"),
        pytest.param(policy(Mode.DRY_RUN, OnDnsError.TEMPFAIL), Role.SENDER, id="dry-run-sender"),
        pytest.param(
            policy(on_dns_error=OnDnsError.TEMPFAIL, sender=SenderCheck.DRY_RUN),
            Role.SENDER,
            id="sender-dry-run",
        ),
    ],
)
def test_a_dry_run_never_tempfails(made: NullMxPolicy, role: Role, mx_class: MxClass) -> None:
    # What enforcing would answer 451 is counted and logged as would_tempfail, with no reply.
    lookup = MxLookup(mx_class, 0.0, "failed")
    assert made.decide(ADDRESS, lookup, role) == Decision(
        Verdict.WOULD_TEMPFAIL, mx_class.value, ADDRESS, lookup=lookup
    )


def test_a_dry_run_with_on_dns_error_accept_just_accepts() -> None:
    lookup = MxLookup(MxClass.TIMEOUT, 0.0, "failed")
    assert policy(Mode.DRY_RUN).decide(ADDRESS, lookup, Role.RECIPIENT) == Decision(
        Verdict.ACCEPTED, "timeout", ADDRESS, lookup=lookup
    )


def test_an_unauthenticated_null_mx_under_dnssec_require_is_accepted_whole() -> None:
    made = policy(sender=SenderCheck.OFF, dnssec=DnssecMode.REQUIRE)
    lookup = MxLookup(MxClass.NULL_MX, 60.0, "0 .", authenticated=False)
    assert made.decide(ADDRESS, lookup, Role.RECIPIENT) == Decision(
        Verdict.ACCEPTED, NULL_MX_UNAUTHENTICATED, ADDRESS, lookup=lookup
    )


def suggesting(mode: Mode, suggestion: Suggestion, asked: list[str]) -> NullMxPolicy:
    def suggest(domain: str) -> Suggestion:
        asked.append(domain)
        return suggestion

    return policy(mode, suggest=suggest)


def test_a_rejected_recipient_carries_its_suggestion_into_the_reply() -> None:
    offered = Suggestion(SuggestionOutcome.OFFERED, "gmail.com", 1)
    asked: list[str] = []
    lookup = MxLookup(MxClass.NULL_MX, 60.0, "0 .")
    decision = suggesting(Mode.ENFORCE, offered, asked).decide(ADDRESS, lookup, Role.RECIPIENT)
    reply = TEMPLATES.recipient.render(ADDRESS.mailbox, ADDRESS.domain, "u@gmail.com")
    assert "u@gmail.com" in " ".join(reply.lines)
    assert decision == Decision(
        Verdict.REJECTED, "null_mx", ADDRESS, reply, lookup, suggestion=offered
    )
    assert asked == ["d.example"]


def test_a_dry_run_keeps_the_suggestion_for_the_log_and_metrics() -> None:
    offered = Suggestion(SuggestionOutcome.OFFERED, "gmail.com", 1)
    lookup = MxLookup(MxClass.NULL_MX, 60.0, "0 .")
    decision = suggesting(Mode.DRY_RUN, offered, []).decide(ADDRESS, lookup, Role.RECIPIENT)
    assert decision == Decision(
        Verdict.WOULD_REJECT, "null_mx", ADDRESS, lookup=lookup, suggestion=offered
    )


def test_no_suggestion_leaves_the_reply_plain_and_senders_are_never_suggested() -> None:
    lookup = MxLookup(MxClass.NULL_MX, 60.0, "0 .")
    asked: list[str] = []
    made = suggesting(Mode.ENFORCE, NO_SUGGESTION, asked)
    plain = TEMPLATES.recipient.render(ADDRESS.mailbox, ADDRESS.domain)
    assert made.decide(ADDRESS, lookup, Role.RECIPIENT) == Decision(
        Verdict.REJECTED, "null_mx", ADDRESS, plain, lookup, suggestion=NO_SUGGESTION
    )
    sender_reply = TEMPLATES.sender.render(ADDRESS.mailbox, ADDRESS.domain)
    assert made.decide(ADDRESS, lookup, Role.SENDER) == Decision(
        Verdict.REJECTED, "null_mx", ADDRESS, sender_reply, lookup
    )
    assert asked == ["d.example"]


def test_the_header_from_reply_defaults_to_the_sender_reply() -> None:
    assert policy().header_from_template is TEMPLATES.sender
    own = ReplyTemplate("550", "5.7.27", ("From: {domain} accepts no mail",))
    made = policy(sender=SenderCheck.OFF, header_from_template=own)
    assert made.header_from_template is own
