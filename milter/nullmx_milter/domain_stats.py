"""Per-domain tallies since start, in bounded memory: rejected, DNS-failing, accepted."""

from __future__ import annotations

from dataclasses import dataclass

from nullmx_milter.suggest import LearnedDomains
from nullmx_milter.top_k import SpaceSaving, TopEntry

# Counters per tally: with N domains counted, no count is more than N / this too high.
TALLY_COUNTERS = 1000


@dataclass(frozen=True, slots=True)
class TopDomains:
    """The largest counts of one tally, with the figures that bound their error."""

    entries: tuple[TopEntry, ...]
    counted: int
    counters: int
    max_overcount: int


class DomainStats:
    """Space-Saving tallies shared by every check; they outlive reloads.

    `learned` (recipient domains accepted with a real MX) feeds the "did you mean"
    candidates; `rejected` and `dns_failing` feed the status report. None of them
    is ever a metric label: their domains are unbounded.
    """

    def __init__(
        self, learned: LearnedDomains | None = None, counters: int = TALLY_COUNTERS
    ) -> None:
        self.learned = learned or LearnedDomains(1000, 10)
        self.rejected = SpaceSaving(counters)
        self.dns_failing = SpaceSaving(counters)

    @staticmethod
    def top(tally: SpaceSaving, limit: int) -> TopDomains:
        return TopDomains(
            entries=tuple(tally.top(limit)),
            counted=tally.total,
            counters=tally.capacity,
            max_overcount=tally.error_bound(),
        )
