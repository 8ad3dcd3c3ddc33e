"""classify_exchanges on real dns.rdata MX records."""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from nullmx_milter.mx import MxClass, classify_exchanges


def exchanges(*records: str) -> list[str]:
    rdatas = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.MX, text) for text in records]
    return [rdata.exchange.to_text() for rdata in rdatas]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param(["0 ."], MxClass.NULL_MX, id="rfc7505"),
        pytest.param(["10 ."], MxClass.NULL_MX, id="nonzero-preference"),
        pytest.param(["0 .", "10 ."], MxClass.NULL_MX, id="several-dots"),
        pytest.param(["0 .", "10 mx.example."], MxClass.MIXED, id="mixed"),
        pytest.param(["10 mx.example.", "20 mx2.example."], MxClass.MX, id="real"),
        pytest.param(["0 mx.example."], MxClass.MX, id="real-pref-0"),
        pytest.param([], MxClass.IMPLICIT, id="empty"),
    ],
)
def test_classification(records: list[str], expected: MxClass) -> None:
    assert classify_exchanges(exchanges(*records)) is expected


def test_failures_are_failures_and_answers_are_not() -> None:
    failures = {mx_class for mx_class in MxClass if mx_class.is_failure}
    assert failures == {MxClass.SERVFAIL, MxClass.TIMEOUT, MxClass.ERROR}
