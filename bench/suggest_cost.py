"""What "did you mean" costs: per rejected address, and per accepted one (learning).

In-process, no DNS: the suggester against the built-in providers plus `learned` learned
domains (realistic names of 6-20 characters), for typed domains that are typos of a
learned domain, typos of a provider, or far from everything; and SpaceSaving.add, the
only work learning adds to an accepted recipient, beside the engine's whole check of a
cached recipient measured in the same run.
"""

from __future__ import annotations

import random
import statistics
import string
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from nullmx_milter.cache import LookupCache
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import Metrics, runtime_versions
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Mode, NullMxPolicy, OnDnsError, ReplyTemplates, SenderCheck
from nullmx_milter.reply import ReplyTemplate
from nullmx_milter.suggest import BUILTIN_PROVIDERS, LearnedDomains, Suggester, SuggestionOutcome

TLDS = ("com", "net", "org", "de", "co.uk", "fr", "io", "example")


@dataclass(frozen=True)
class SuggestSizes:
    learned: int = 1000
    typed: int = 3000
    accepts: int = 200_000


SUGGEST_SMOKE = SuggestSizes(learned=50, typed=60, accepts=2000)


@dataclass(frozen=True)
class SuggestCost:
    learned: int
    candidates: int
    typed: int
    p50: float  # CPU time
    wall_p50: float
    p99: float
    worst: float
    offered: int
    first: float  # the first suggestion, which indexes every learned domain
    add_seconds: float  # SpaceSaving.add per accepted recipient
    check_seconds: float  # the engine's check of a cached, accepted recipient


def _domain(rng: random.Random) -> str:
    label = "".join(rng.choice(string.ascii_lowercase + "-") for _ in range(rng.randint(3, 14)))
    return f"{label.strip('-') or 'x'}.{rng.choice(TLDS)}"


def _typo(rng: random.Random, domain: str) -> str:
    at = rng.randrange(len(domain) - 1)
    if rng.random() < 0.5:
        return domain[:at] + domain[at + 1] + domain[at] + domain[at + 2 :]
    return domain[:at] + rng.choice(string.ascii_lowercase) + domain[at + 1 :]


def _engine(metrics: Metrics) -> NullMxEngine:
    template = ReplyTemplate("556", "5.1.10", ("<{address}> rejected",))
    policy = NullMxPolicy(
        Mode.ENFORCE,
        OnDnsError.ACCEPT,
        SenderCheck.OFF,
        frozenset(),
        ReplyTemplates(template, template, template),
    )

    class Source:
        nameservers = ("127.0.0.1:53",)
        timeout = 1.0

        def lookup(self, domain: str) -> MxLookup:
            return MxLookup(MxClass.MX, 3600.0)

    lookups = MxLookupService(Source(), LookupCache(1000, 5, 3600, 5), DnsHealth(5, 1.0), metrics)
    return NullMxEngine(policy, lookups, metrics)


def run_suggest_cost(sizes: SuggestSizes = SuggestSizes()) -> SuggestCost:
    rng = random.Random(7)
    learned = LearnedDomains(sizes.learned, 10)
    domains = [_domain(rng) for _ in range(sizes.learned)]
    for domain in domains:
        for _ in range(20):
            learned.record(domain)
    suggester = Suggester(BUILTIN_PROVIDERS, learned)
    pool = [*domains, *BUILTIN_PROVIDERS]
    typed = []
    for index in range(sizes.typed):
        kind = index % 3
        typed.append(_typo(rng, rng.choice(pool)) if kind < 2 else _domain(rng) + "-far")
    started = time.perf_counter()
    suggester.suggest(typed[0])  # indexes the learned domains, as the first reject does
    first = time.perf_counter() - started
    # CPU time of this thread: on a shared 2-core host wall time mostly measures the
    # other processes (the wall-clock median is given beside it).
    timings = []
    walls = []
    offered = 0
    for domain in typed:
        started, cpu = time.perf_counter(), time.thread_time()
        suggestion = suggester.suggest(domain)
        timings.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - started)
        offered += suggestion.outcome is SuggestionOutcome.OFFERED
    timings.sort()

    counter = LearnedDomains(sizes.learned, 10)
    stream = [rng.choice(domains) for _ in range(sizes.accepts)]
    started = time.perf_counter()
    for domain in stream:
        counter.record(domain)
    add_seconds = (time.perf_counter() - started) / sizes.accepts

    engine = _engine(Metrics(CollectorRegistry(), runtime_versions("-", "-")))
    arguments = [f"<user@{domain}>" for domain in stream[: sizes.accepts // 4]]
    for argument in arguments[:100]:
        engine.check_recipient(argument)
    started = time.perf_counter()
    for argument in arguments:
        engine.check_recipient(argument)
    check_seconds = (time.perf_counter() - started) / len(arguments)
    return SuggestCost(
        learned=sizes.learned,
        candidates=sizes.learned + len(BUILTIN_PROVIDERS),
        typed=sizes.typed,
        p50=statistics.median(timings),
        wall_p50=statistics.median(walls),
        p99=timings[int(len(timings) * 0.99) - 1] if len(timings) > 1 else timings[0],
        worst=timings[-1],
        offered=offered,
        first=first,
        add_seconds=add_seconds,
        check_seconds=check_seconds,
    )


def suggest_section(cost: SuggestCost) -> str:
    """The README lines for this case."""
    share = cost.add_seconds / cost.check_seconds
    return "\n".join(
        [
            '**"Did you mean" (in-process, one thread)**',
            "",
            "| target | measured | met |",
            "|---|---:|---|",
            f"| a suggestion < 1 ms per rejected address, {cost.learned:,} learned + "
            f"{cost.candidates - cost.learned} built-in candidates ({cost.typed:,} typed "
            f"domains, {cost.offered:,} offered) | CPU p50 {cost.p50 * 1e6:.0f} µs, "
            f"p99 {cost.p99 * 1e6:.0f} µs, worst {cost.worst * 1e6:.0f} µs "
            f"(wall p50 {cost.wall_p50 * 1e6:.0f} µs) "
            f"| {'yes' if cost.p99 < 0.001 else 'NO'} |",
            f"| indexing {cost.learned:,} learned domains, once (the first reject after they "
            f"were learned) | {cost.first * 1e3:.0f} ms | - |",
            f"| learning, per accepted recipient (beside the engine's whole cached check, "
            f"{cost.check_seconds * 1e6:.1f} µs) | {cost.add_seconds * 1e6:.2f} µs "
            f"({share:.0%} of the check) | - |",
        ]
    )


if __name__ == "__main__":
    print(suggest_section(run_suggest_cost()))
