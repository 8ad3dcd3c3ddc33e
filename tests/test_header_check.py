"""The header From check: reject only on certainty, never on doubt."""

from __future__ import annotations

import pytest

from nullmx_milter.header_check import (
    MAX_LOOKUPS,
    HeaderFromCheck,
    HeaderVerdict,
    check_header_from,
)
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.reply import ReplyTemplate

TEMPLATE = ReplyTemplate("550", "5.7.27", ("<{address}>: From domain {domain} accepts no mail",))
CLASSES = {
    "null.test": MxClass.NULL_MX,
    "null2.test": MxClass.NULL_MX,
    "real.test": MxClass.MX,
    "broken.test": MxClass.SERVFAIL,
    "allowed.test": MxClass.NULL_MX,
}


def check(*values: str, mode: HeaderFromCheck = HeaderFromCheck.REJECT) -> tuple[str, str]:
    looked_up: list[str] = []

    def lookup(domain: str) -> MxLookup:
        looked_up.append(domain)
        return MxLookup(CLASSES.get(domain, MxClass.NXDOMAIN), 60.0)

    decision = check_header_from(
        values,
        mode=mode,
        lookup=lookup,
        is_allowlisted=lambda domain: domain == "allowed.test",
        template=TEMPLATE,
    )
    assert len(looked_up) == len(set(looked_up)), "each domain looked up once"
    if decision.verdict is HeaderVerdict.REJECTED:
        assert decision.reply is not None
        assert decision.reply.code == "550" and decision.reply.enhanced == "5.7.27"
        return decision.verdict.value, decision.reply.lines[0]
    assert decision.reply is None
    return decision.verdict.value, decision.reason


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            ("Jane <jane@null.test>",),
            ("rejected", "<jane@null.test>: From domain null.test accepts no mail"),
            id="null-mx",
        ),
        pytest.param(
            ("a@null.test, b@null2.test",),
            ("rejected", "<a@null.test>: From domain null.test accepts no mail"),
            id="every-address-null",
        ),
        pytest.param(("a@null.test, b@real.test",), ("accepted", "mx"), id="one-real-is-enough"),
        pytest.param(("a@null.test", "b@real.test"), ("accepted", "mx"), id="second-from-field"),
        pytest.param(("a@broken.test",), ("accepted", "servfail"), id="dns-failure-passes"),
        pytest.param(("a@allowed.test",), ("accepted", "allowlisted"), id="allowlisted"),
        pytest.param(("a@[192.0.2.1], b@null.test",), ("accepted", "address_literal"), id="lit"),
        pytest.param(("garbage <",), ("skipped", "no_parseable_from"), id="garbage"),
        pytest.param((), ("skipped", "no_parseable_from"), id="no-from"),
        pytest.param(
            (", ".join(f"u@d{n}.null.test" for n in range(MAX_LOOKUPS + 1)),),
            ("skipped", "too_many_domains"),
            id="too-many-domains",
        ),
    ],
)
def test_header_from(values: tuple[str, ...], expected: tuple[str, str]) -> None:
    assert check(*values) == expected


def test_dry_run_and_off() -> None:
    assert check("a@null.test", mode=HeaderFromCheck.DRY_RUN) == ("would_reject", "null_mx")
    assert check("a@null.test", mode=HeaderFromCheck.OFF) == ("skipped", "header_from_check_off")
