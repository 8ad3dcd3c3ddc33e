"""An in-memory MX source that mirrors tests/zones, for engine tests without a DNS server."""

from __future__ import annotations

from nullmx_milter.config import Config
from nullmx_milter.daemon import build
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.mx import MxClass, MxLookup

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


class FakeDns:
    """Answers from ZONE_CLASSES; counts the lookups it was asked for."""

    timeout = 1.0

    def __init__(self) -> None:
        self.queries: list[str] = []

    def lookup(self, domain: str) -> MxLookup:
        self.queries.append(domain)
        if domain in ZONE_CLASSES:
            return MxLookup(ZONE_CLASSES[domain], 300.0, "fake")
        if domain.endswith(".broken.test") or domain == "broken.test":
            return MxLookup(MxClass.SERVFAIL, 0.0, "fake SERVFAIL")
        if domain.endswith((".test", ".example")) or domain in ("test", "example"):
            return MxLookup(MxClass.NXDOMAIN, 60.0, "fake NXDOMAIN")
        return MxLookup(MxClass.ERROR, 0.0, "fake REFUSED")


def fake_engine(config: Config, dns: FakeDns | None = None) -> NullMxEngine:
    """The engine as the daemon builds it, over FakeDns instead of a resolver."""
    return build(config, source=dns or FakeDns()).engine
