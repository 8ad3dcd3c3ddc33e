"""A generated DNS zone with many mail domains, for cold-cache and memory runs."""

from __future__ import annotations

ORIGIN = "bench."
TTL = 3600
# Of every ten domains: one publishes a null MX, five are hosted by one of PROVIDERS mail
# providers (two MX records each, shared with that provider's other customers), four run
# their own mail host (an MX name of their own, as Microsoft 365 gives every tenant).
NULL_MX_EVERY = 10
HOSTED_SHARE = 5
PROVIDERS = 50


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
        kind = number % NULL_MX_EVERY
        if kind == 0:
            lines.append(f"d{number} MX 0 .")
        elif kind <= HOSTED_SHARE:
            provider = number % PROVIDERS
            lines.append(f"d{number} MX 10 mx1.provider{provider}.bench.")
            lines.append(f"d{number} MX 20 mx2.provider{provider}.bench.")
        else:
            lines.append(f"d{number} MX 10 mail.d{number}.bench.")
    return "\n".join(lines) + "\n"
