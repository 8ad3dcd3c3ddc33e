"""Fakes for unit tests: a table-driven MX source and an engine built around it."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from nullmx_milter.cache import LookupCache
from nullmx_milter.config import RepliesConfig
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Mode, NullMxPolicy, OnDnsError, SenderCheck

ANSWERS = {
    "null.example": MxClass.NULL_MX,
    "real.example": MxClass.MX,
    "broken.example": MxClass.SERVFAIL,
}
TEST_VERSIONS = {"version": "t", "pymilter": "t", "libmilter": "t", "python": "t"}


class FakeSource:
    """Classifies by `answers` (default ANSWERS; IMPLICIT otherwise); raises for 'bug.example'
    to stand for a bug."""

    timeout = 1.0

    def __init__(self, answers: Mapping[str, MxClass] | None = None) -> None:
        self.answers = dict(ANSWERS if answers is None else answers)
        self.queries: list[str] = []

    def lookup(self, domain: str) -> MxLookup:
        self.queries.append(domain)
        if domain == "bug.example":
            raise RuntimeError("a bug")
        return MxLookup(self.answers.get(domain, MxClass.IMPLICIT), 60.0, "fake")


def fake_engine(
    mode: Mode = Mode.ENFORCE,
    on_dns_error: OnDnsError = OnDnsError.ACCEPT,
    sender: SenderCheck = SenderCheck.OFF,
) -> tuple[NullMxEngine, Metrics]:
    """An engine over FakeSource with its own registry."""
    metrics = Metrics(CollectorRegistry(), TEST_VERSIONS)
    policy = NullMxPolicy(mode, on_dns_error, sender, frozenset(), RepliesConfig().templates())
    lookups = MxLookupService(FakeSource(), LookupCache(100, 0, 60, 0), DnsHealth(5, 1), metrics)
    return NullMxEngine(policy, lookups, metrics), metrics
