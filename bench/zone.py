"""A generated DNS zone with many mail domains, for cold-cache and memory runs."""

from __future__ import annotations

ORIGIN = "bench."
# Every tenth domain publishes a null MX; the rest name their own mail host.
NULL_MX_EVERY = 10
TTL = 3600


def domain(number: int) -> str:
    """The number-th generated domain (no trailing dot)."""
    return f"d{number}.bench"


def zone_text(count: int) -> str:
    """Zone file text for `count` domains under bench. (TTLs long enough to stay cached)."""
    lines = [
        f"$ORIGIN {ORIGIN}",
        f"$TTL {TTL}",
        "@ SOA ns.bench. hostmaster.bench. 1 3600 600 86400 300",
        "@ NS ns.bench.",
        "ns A 127.0.0.1",
    ]
    for number in range(count):
        if number % NULL_MX_EVERY == 0:
            lines.append(f"d{number} MX 0 .")
        else:
            lines.append(f"d{number} MX 10 mail.d{number}.bench.")
    return "\n".join(lines) + "\n"
