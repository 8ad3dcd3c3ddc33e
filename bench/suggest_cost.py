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
from nullmx_milter.domain_stats import DomainStats
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.lookup_service import MxLookupService
from nullmx_milter.metrics import Metrics, runtime_versions
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Mode, NullMxPolicy, OnDnsError, ReplyTemplates, SenderCheck
from nullmx_milter.reply import ReplyTemplate
from nullmx_milter.suggest import (
    BUILTIN_PROVIDERS,
    INDEX_PER_CALL,
    LearnedDomains,
    Suggester,
    SuggestionOutcome,
)

TLDS = ("com", "net", "org", "de", "co.uk", "fr", "io", "example")
ROUNDS = 3


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
    index_total: float  # CPU to index every learned domain, over the first rejects
    index_worst: float  # the most one of those rejects paid
    add_seconds: float  # LearnedDomains.record per accepted recipient
    check_before: float  # CPU per check of a cached, accepted recipient, no tallies
    check_after: float  # the same with the tallies (learning included)


def _domain(rng: random.Random) -> str:
    label = "".join(rng.choice(string.ascii_lowercase + "-") for _ in range(rng.randint(3, 14)))
    return f"{label.strip('-') or 'x'}.{rng.choice(TLDS)}"


def _typo(rng: random.Random, domain: str) -> str:
    at = rng.randrange(len(domain) - 1)
    if rng.random() < 0.5:
        return domain[:at] + domain[at + 1] + domain[at] + domain[at + 2 :]
    return domain[:at] + rng.choice(string.ascii_lowercase) + domain[at + 1 :]


def _engine(metrics: Metrics, domains: DomainStats | None) -> NullMxEngine:
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
    return NullMxEngine(policy, lookups, metrics, domains=domains)


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
    # The first rejects index the learned domains, INDEX_PER_CALL at a time.
    warm_up = []
    while not learned.indexed:
        started = time.thread_time()
        suggester.suggest("warm-up.example")
        warm_up.append(time.thread_time() - started)
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

    # The whole check of a cached, accepted recipient without the tallies (as before they
    # existed) and with them, alternating rounds so that both see the same machine.
    arguments = [f"<user@{domain}>" for domain in stream[: sizes.accepts // 4]]
    engines = {
        "before": _engine(Metrics(CollectorRegistry(), runtime_versions("-", "-")), None),
        "after": _engine(
            Metrics(CollectorRegistry(), runtime_versions("-", "-")),
            DomainStats(LearnedDomains(sizes.learned, 10)),
        ),
    }
    spent = dict.fromkeys(engines, 0.0)
    for engine in engines.values():
        for argument in arguments[:100]:
            engine.check_recipient(argument)
    for _round in range(ROUNDS):
        for name, engine in engines.items():
            started = time.thread_time()
            for argument in arguments:
                engine.check_recipient(argument)
            spent[name] += time.thread_time() - started
    checks = ROUNDS * len(arguments)
    return SuggestCost(
        learned=sizes.learned,
        candidates=sizes.learned + len(BUILTIN_PROVIDERS),
        typed=sizes.typed,
        p50=statistics.median(timings),
        wall_p50=statistics.median(walls),
        p99=timings[int(len(timings) * 0.99) - 1] if len(timings) > 1 else timings[0],
        worst=timings[-1],
        offered=offered,
        index_total=sum(warm_up),
        index_worst=max(warm_up, default=0.0),
        add_seconds=add_seconds,
        check_before=spent["before"] / checks,
        check_after=spent["after"] / checks,
    )


def suggest_section(cost: SuggestCost) -> str:
    """The README lines for this case."""
    ratio = cost.check_after / cost.check_before
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
            f"| indexing {cost.learned:,} learned domains ({INDEX_PER_CALL} per reject at "
            f"most): in all, and the most one reject paid | {cost.index_total * 1e3:.0f} ms, "
            f"{cost.index_worst * 1e3:.1f} ms | - |",
            f"| learning, per accepted recipient: one counter update | "
            f"{cost.add_seconds * 1e6:.2f} µs | - |",
            f"| the engine's whole check of a cached, accepted recipient, CPU, without -> with "
            f"the tallies | {cost.check_before * 1e6:.1f} -> {cost.check_after * 1e6:.1f} µs "
            f"(x {ratio:.2f}) | - |",
        ]
    )


if __name__ == "__main__":
    print(suggest_section(run_suggest_cost()))
