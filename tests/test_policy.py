"""NullMxPolicy: what each classification, mode and role leads to."""

from __future__ import annotations

import pytest

from nullmx_milter.address import parse_address
from nullmx_milter.config import RepliesConfig
from nullmx_milter.dnssec import DnssecMode
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Mode, NullMxPolicy, OnDnsError, Role, SenderCheck, Verdict
from nullmx_milter.runtime import recipient_templates


def policy(
    mode: Mode = Mode.ENFORCE,
    on_dns_error: OnDnsError = OnDnsError.ACCEPT,
    sender: SenderCheck = SenderCheck.OFF,
    allowlist: frozenset[str] = frozenset(),
    dnssec: DnssecMode = DnssecMode.OFF,
) -> NullMxPolicy:
    return NullMxPolicy(
        mode,
        on_dns_error,
        sender,
        allowlist,
        recipient_templates(RepliesConfig()),
        dnssec=dnssec,
    )


@pytest.mark.parametrize(
    ("mx_class", "on_error", "verdict", "code"),
    [
        pytest.param(MxClass.NULL_MX, OnDnsError.ACCEPT, Verdict.REJECTED, "556", id="null"),
        pytest.param(MxClass.MIXED, OnDnsError.ACCEPT, Verdict.ACCEPTED, None, id="mixed"),
        pytest.param(MxClass.MX, OnDnsError.TEMPFAIL, Verdict.ACCEPTED, None, id="mx"),
        pytest.param(MxClass.IMPLICIT, OnDnsError.TEMPFAIL, Verdict.ACCEPTED, None, id="impl"),
        pytest.param(MxClass.NXDOMAIN, OnDnsError.TEMPFAIL, Verdict.ACCEPTED, None, id="nx"),
        pytest.param(MxClass.SERVFAIL, OnDnsError.ACCEPT, Verdict.ACCEPTED, None, id="sf-acc"),
        pytest.param(MxClass.TIMEOUT, OnDnsError.ACCEPT, Verdict.ACCEPTED, None, id="to-acc"),
        pytest.param(MxClass.SERVFAIL, OnDnsError.TEMPFAIL, Verdict.TEMPFAILED, "451", id="sf-tf"),
        pytest.param(MxClass.TIMEOUT, OnDnsError.TEMPFAIL, Verdict.TEMPFAILED, "451", id="to-tf"),
        pytest.param(MxClass.ERROR, OnDnsError.TEMPFAIL, Verdict.TEMPFAILED, "451", id="err-tf"),
    ],
)
def test_recipient_decisions(
    mx_class: MxClass, on_error: OnDnsError, verdict: Verdict, code: str | None
) -> None:
    address = parse_address("<u@d.example>")
    decision = policy(on_dns_error=on_error).decide(address, MxLookup(mx_class, 60), Role.RECIPIENT)
    assert decision.verdict is verdict
    assert (decision.reply.code if decision.reply else None) == code


def test_no_classification_ever_gives_a_5xx_except_null_mx() -> None:
    address = parse_address("<u@d.example>")
    for on_error in OnDnsError:
        for mx_class in MxClass:
            decision = policy(on_dns_error=on_error).decide(
                address, MxLookup(mx_class, 0), Role.RECIPIENT
            )
            if decision.reply is not None and decision.reply.code.startswith("5"):
                assert mx_class is MxClass.NULL_MX


def test_dry_run_only_counts() -> None:
    address = parse_address("<u@d.example>")
    decision = policy(Mode.DRY_RUN).decide(address, MxLookup(MxClass.NULL_MX, 60), Role.RECIPIENT)
    assert decision.verdict is Verdict.WOULD_REJECT
    assert decision.reply is None


def test_null_mx_reply_is_annotated_556_5_1_10() -> None:
    address = parse_address("<u@d.example>")
    reply = policy().decide(address, MxLookup(MxClass.NULL_MX, 60), Role.RECIPIENT).reply
    assert reply is not None
    assert (reply.code, reply.enhanced) == ("556", "5.1.10")
    assert "<u@d.example>" in reply.lines[0]
    assert "d.example does not accept mail" in reply.lines[0]


@pytest.mark.parametrize(
    ("domain", "allowed"),
    [
        pytest.param("allowed.example", True, id="exact"),
        pytest.param("deep.sub.allowed.example", True, id="subdomain"),
        pytest.param("notallowed.example", False, id="suffix-but-not-label"),
        pytest.param("example", False, id="parent"),
    ],
)
def test_allowlist(domain: str, allowed: bool) -> None:
    decision = policy(allowlist=frozenset({"allowed.example"})).pre_lookup(
        parse_address(f"<u@{domain}>"), Role.RECIPIENT
    )
    assert (decision is not None and decision.verdict is Verdict.ACCEPTED) is allowed


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        pytest.param("<>", "null_path", id="null-path"),
        pytest.param("<postmaster>", "postmaster", id="postmaster"),
        pytest.param("<u@[192.0.2.1]>", "literal", id="literal"),
        pytest.param("<u@bad..example>", "invalid", id="invalid"),
    ],
)
def test_skipped_without_lookup(argument: str, reason: str) -> None:
    decision = policy().pre_lookup(parse_address(argument), Role.RECIPIENT)
    assert decision is not None
    assert (decision.verdict, decision.reason) == (Verdict.SKIPPED, reason)


def test_sender_check() -> None:
    address = parse_address("<bounce@d.example>")
    null = MxLookup(MxClass.NULL_MX, 60)
    off = policy(sender=SenderCheck.OFF).pre_lookup(address, Role.SENDER)
    assert off is not None
    assert off.verdict is Verdict.SKIPPED
    rejected = policy(sender=SenderCheck.REJECT).decide(address, null, Role.SENDER)
    assert rejected.reply is not None
    assert (rejected.reply.code, rejected.reply.enhanced) == ("550", "5.7.27")
    dry = policy(sender=SenderCheck.DRY_RUN).decide(address, null, Role.SENDER)
    assert dry.verdict is Verdict.WOULD_REJECT
    enforce_recipients_only = policy(Mode.DRY_RUN, sender=SenderCheck.REJECT)
    assert enforce_recipients_only.decide(address, null, Role.SENDER).reply is None


@pytest.mark.parametrize(
    ("dnssec", "authenticated", "role", "mode", "verdict", "reason", "code"),
    [
        pytest.param(
            DnssecMode.OFF, False, Role.RECIPIENT, Mode.ENFORCE, Verdict.REJECTED, "null_mx", "556",
            id="off-trusts-any-null-mx",
        ),
        pytest.param(
            DnssecMode.REQUIRE, True, Role.RECIPIENT, Mode.ENFORCE, Verdict.REJECTED, "null_mx",
            "556", id="require-authenticated",
        ),
        pytest.param(
            DnssecMode.REQUIRE, False, Role.RECIPIENT, Mode.ENFORCE, Verdict.ACCEPTED,
            "null_mx_unauthenticated", None, id="require-unauthenticated",
        ),
        pytest.param(
            DnssecMode.REQUIRE, True, Role.SENDER, Mode.ENFORCE, Verdict.REJECTED, "null_mx",
            "550", id="sender-authenticated",
        ),
        pytest.param(
            DnssecMode.REQUIRE, False, Role.SENDER, Mode.ENFORCE, Verdict.ACCEPTED,
            "null_mx_unauthenticated", None, id="sender-unauthenticated",
        ),
        pytest.param(
            DnssecMode.REQUIRE, True, Role.RECIPIENT, Mode.DRY_RUN, Verdict.WOULD_REJECT,
            "null_mx", None, id="dry-run-authenticated",
        ),
        pytest.param(
            DnssecMode.REQUIRE, False, Role.RECIPIENT, Mode.DRY_RUN, Verdict.ACCEPTED,
            "null_mx_unauthenticated", None, id="dry-run-unauthenticated",
        ),
    ],
)  # fmt: skip
def test_dnssec_require_rejects_only_authenticated_null_mx(
    dnssec: DnssecMode,
    authenticated: bool,
    role: Role,
    mode: Mode,
    verdict: Verdict,
    reason: str,
    code: str | None,
) -> None:
    address = parse_address("<u@d.example>")
    lookup = MxLookup(MxClass.NULL_MX, 60, authenticated=authenticated)
    decision = policy(mode, sender=SenderCheck.REJECT, dnssec=dnssec).decide(address, lookup, role)
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert (decision.reply.code if decision.reply else None) == code


@pytest.mark.parametrize("on_error", list(OnDnsError))
def test_dnssec_require_changes_nothing_but_null_mx(on_error: OnDnsError) -> None:
    address = parse_address("<u@d.example>")
    for mx_class in MxClass:
        if mx_class is MxClass.NULL_MX:
            continue
        lookup = MxLookup(mx_class, 60)
        required = policy(on_dns_error=on_error, dnssec=DnssecMode.REQUIRE)
        off = policy(on_dns_error=on_error)
        assert required.decide(address, lookup, Role.RECIPIENT) == off.decide(
            address, lookup, Role.RECIPIENT
        )
