"""Fakes for unit tests: a table-driven MX source and an engine built around it."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from nullmx_milter.cache import LookupCache
from nullmx_milter.config import Config, RepliesConfig, config_from_dict
from nullmx_milter.daemon import build
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.lookup_service import MxLookupService, MxSource
from nullmx_milter.metrics import Metrics
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Mode, NullMxPolicy, OnDnsError, SenderCheck
from nullmx_milter.runtime import RuntimeHolder, recipient_templates

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
    policy = NullMxPolicy(
        mode, on_dns_error, sender, frozenset(), recipient_templates(RepliesConfig())
    )
    lookups = MxLookupService(FakeSource(), LookupCache(100, 0, 60, 0), DnsHealth(5, 1), metrics)
    return NullMxEngine(policy, lookups, metrics), metrics


def fake_runtimes(
    mode: Mode = Mode.ENFORCE,
    on_dns_error: OnDnsError = OnDnsError.ACCEPT,
    sender: SenderCheck = SenderCheck.OFF,
    idle_timeout: float = 300.0,
) -> tuple[RuntimeHolder, Metrics]:
    """A runtime over FakeSource, built as the daemon builds it, with its own registry."""
    config = config_from_dict(
        {
            "policy": {
                "mode": mode.value,
                "on_dns_error": on_dns_error.value,
                "sender_null_mx": sender.value,
            },
            "policy_service": {"idle_timeout": idle_timeout},
        }
    )
    components = build(config, CollectorRegistry(), source=FakeSource())
    return components.runtimes, components.metrics


# What Knot says about the names in tests/zones (the rest of test. is NXDOMAIN; other
# zones are not served there, and Knot answers REFUSED, an error).
ZONE_CLASSES = {
    "null.test": MxClass.NULL_MX,
    "null10.test": MxClass.NULL_MX,
    "nulltwice.test": MxClass.NULL_MX,
    "cname-null.test": MxClass.NULL_MX,
    "xn--bcher-kva.test": MxClass.NULL_MX,
    "xn--strae-oqa.test": MxClass.NULL_MX,
    "allowed.test": MxClass.NULL_MX,
    "sub.allowed.test": MxClass.NULL_MX,
    "nullsender.test": MxClass.NULL_MX,
    "to-null.example": MxClass.NULL_MX,
    "mixed.test": MxClass.MIXED,
    "real.test": MxClass.MX,
    "cname-real.test": MxClass.MX,
    "strasse.test": MxClass.MX,
    "to-real.example": MxClass.MX,
    "implicit.test": MxClass.IMPLICIT,
}


class ZoneSource(FakeSource):
    """Answers as Knot does for tests/zones, so engine tests and daemon tests agree."""

    def __init__(self) -> None:
        super().__init__(ZONE_CLASSES)

    def lookup(self, domain: str) -> MxLookup:
        self.queries.append(domain)
        if domain in self.answers:
            return MxLookup(self.answers[domain], 300.0, "fake")
        if domain == "broken.test" or domain.endswith(".broken.test"):
            return MxLookup(MxClass.SERVFAIL, 0.0, "fake SERVFAIL")
        if domain in ("test", "example") or domain.endswith((".test", ".example")):
            return MxLookup(MxClass.NXDOMAIN, 60.0, "fake NXDOMAIN")
        return MxLookup(MxClass.ERROR, 0.0, "fake REFUSED")


def engine_from_config(config: Config, source: MxSource | None = None) -> NullMxEngine:
    """The engine exactly as the daemon builds it from `config`, over ZoneSource by default."""
    return build(config, source=source or ZoneSource()).engine
