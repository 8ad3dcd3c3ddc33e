""" "Did you mean ...?": the one mail-accepting domain a small edit away from a rejected one."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nullmx_milter.edit_distance import char_mask, distance, may_be_within
from nullmx_milter.top_k import SpaceSaving

# The most widely used mailbox providers (the consumer webmail and ISP domains that
# dominate address lists). Config can replace the list or extend it.
BUILTIN_PROVIDERS = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "ymail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.de",
    "gmx.net",
    "gmx.com",
    "web.de",
    "t-online.de",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
    "126.com",
    "orange.fr",
    "free.fr",
    "libero.it",
    "btinternet.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "zoho.com",
    "mail.com",
)
# Distance allowed: 1 below this many characters, 2 from it on (see README "Did you mean").
LONG_DOMAIN_CHARS = 8


class SuggestionOutcome(enum.Enum):
    """What the suggester found; the value is the metric label."""

    OFFERED = "offered"
    TIE = "tie"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The outcome for one rejected domain and, when offered, the domain to propose."""

    outcome: SuggestionOutcome
    domain: str = ""
    distance: int = 0


NO_SUGGESTION = Suggestion(SuggestionOutcome.NONE)


def max_distance(domain: str) -> int:
    """The largest edit that still counts as a typo of a candidate for `domain`."""
    return 1 if len(domain) < LONG_DOMAIN_CHARS else 2


def suggested_address(mailbox: str, domain: str) -> str:
    """`mailbox` with its domain (after the last '@') replaced by `domain`."""
    local, _at, _old = mailbox.rpartition("@")
    return f"{local}@{domain}" if local else domain


class Suggester:
    """Finds the nearest candidate: built-in providers plus domains learned as accepted.

    Built once per runtime; `learned` is the live counter of recipient domains accepted
    with a real MX, shared across reloads. A learned domain is a candidate once it was
    accepted `learned_min_count` times for certain (count minus its possible error).
    """

    def __init__(
        self,
        providers: Iterable[str],
        learned: SpaceSaving | None = None,
        learned_min_count: int = 10,
    ) -> None:
        self._providers = tuple(
            (domain, len(domain), char_mask(domain)) for domain in dict.fromkeys(providers)
        )
        self._provider_names = frozenset(domain for domain, _, _ in self._providers)
        self._learned = learned
        self._learned_min_count = learned_min_count
        # Masks of learned domains, computed once each; cleared when it grows past a bound.
        self._masks: dict[str, int] = {}
        self._mask_limit = 4 * (learned.capacity if learned is not None else 0) + 64

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(domain for domain, _, _ in self._providers)

    def suggest(
        self, domain: str, refuses_mail: Callable[[str], bool] = lambda _domain: False
    ) -> Suggestion:
        """The one candidate nearest to `domain`, if it is unique and close enough.

        Call only for a domain DNS has proved receives no mail. `refuses_mail` says
        whether a candidate is known (from the cache, say) not to accept mail: such a
        candidate is never proposed.
        """
        limit = max_distance(domain)
        length = len(domain)
        mask = char_mask(domain)
        near: list[tuple[int, str]] = []
        for candidate, candidate_length, candidate_mask in self._candidates():
            if abs(candidate_length - length) > limit or candidate == domain:
                continue
            if not may_be_within(mask, candidate_mask, limit):
                continue
            edits = distance(domain, candidate, limit)
            if edits <= limit and not refuses_mail(candidate):
                near.append((edits, candidate))
        if not near:
            return NO_SUGGESTION
        best = min(edits for edits, _ in near)
        nearest = {candidate for edits, candidate in near if edits == best}
        if len(nearest) > 1:
            return Suggestion(SuggestionOutcome.TIE, distance=best)
        return Suggestion(SuggestionOutcome.OFFERED, nearest.pop(), best)

    def _candidates(self) -> Iterable[tuple[str, int, int]]:
        yield from self._providers
        if self._learned is None:
            return
        masks = self._masks
        if len(masks) > self._mask_limit:
            masks.clear()
        for candidate, _count in self._learned.at_least(self._learned_min_count):
            if candidate in self._provider_names:
                continue
            candidate_mask = masks.get(candidate)
            if candidate_mask is None:
                candidate_mask = masks[candidate] = char_mask(candidate)
            yield candidate, len(candidate), candidate_mask
