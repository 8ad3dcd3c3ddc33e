""" "Did you mean ...?": the one mail-accepting domain a small edit away from a rejected one."""

from __future__ import annotations

import enum
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nullmx_milter.edit_distance import distance
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
# Distance allowed: 1 below this many characters, 2 from it on (see docs/checks.md).
LONG_DOMAIN_CHARS = 8
MAX_EDITS = 2
# Longer candidates are not indexed (their deletion variants grow with the square of
# the length); a mailbox domain this long is rare and a typo in it rarer.
MAX_INDEXED_CHARS = 64
# Learned candidates indexed per reject at most (each costs some hundred dict writes).
INDEX_PER_CALL = 32


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


def deletions(text: str, depth: int) -> set[str]:
    """`text` and every string made from it by deleting up to `depth` characters."""
    found = {text}
    level = {text}
    for _ in range(depth):
        level = {word[:index] + word[index + 1 :] for word in level for index in range(len(word))}
        found |= level
    return found


class DeletionIndex:
    """Candidates by their deletion variants (the symmetric-delete method).

    When `distance(a, b) <= k`, deleting at most k characters from each side gives the
    same string: a substitution or a swap costs one deletion on each side, an insertion
    one on one side. So the candidates within k of a word are among those that share a
    deletion variant with it; looking those up costs some hundred dict reads, whatever
    the number of candidates. Not thread-safe on its own.
    """

    def __init__(self, domains: Iterable[str] = ()) -> None:
        # A variant's holder, or a tuple of them when several share it: plain strings
        # keep the garbage collector from walking a hundred thousand small sets.
        self._variants: dict[str, str | tuple[str, ...]] = {}
        self.members: set[str] = set()
        for domain in domains:
            self.add(domain)

    def add(self, domain: str) -> None:
        if domain in self.members or len(domain) > MAX_INDEXED_CHARS:
            return
        self.members.add(domain)
        variants = self._variants
        for variant in deletions(domain, MAX_EDITS):
            holders = variants.get(variant)
            if holders is None:
                variants[variant] = domain
            elif isinstance(holders, str):
                variants[variant] = (holders, domain)
            else:
                variants[variant] = (*holders, domain)

    def remove(self, domain: str) -> None:
        if domain not in self.members:
            return
        self.members.discard(domain)
        variants = self._variants
        for variant in deletions(domain, MAX_EDITS):
            holders = variants.get(variant)
            if holders == domain:
                del variants[variant]
            elif isinstance(holders, tuple):
                rest = tuple(holder for holder in holders if holder != domain)
                variants[variant] = rest[0] if len(rest) == 1 else rest

    def near(self, variants_of_word: set[str]) -> set[str]:
        """A superset of the members within k edits of a word, given its `deletions(word, k)`."""
        found: set[str] = set()
        variants = self._variants
        for variant in variants_of_word:
            holders = variants.get(variant)
            if holders is None:
                continue
            if isinstance(holders, str):
                found.add(holders)
            else:
                found.update(holders)
        return found


class LearnedDomains:
    """Recipient domains accepted with a real MX, counted in bounded memory; thread-safe.

    `record` is all the accept path pays (one Space-Saving update). A domain becomes a
    candidate once accepted `min_count` times for certain (its count minus the count
    it may have inherited); the index of candidates is brought up to date on the reject
    path, only when that set changed since the last time.
    """

    def __init__(self, capacity: int, min_count: int) -> None:
        self.counter = SpaceSaving(capacity, promote_at=min_count)
        self._lock = threading.Lock()
        self._index = DeletionIndex()
        self._generation = -1

    def record(self, domain: str) -> None:
        self.counter.add(domain)

    @property
    def indexed(self) -> bool:
        """Whether every candidate is in the index (none is waiting for the next reject)."""
        return self._generation == self.counter.generation

    def configure(self, capacity: int, min_count: int) -> None:
        """Apply reloaded settings (the counts so far are kept)."""
        self.counter.resize(capacity)
        self.counter.promote_at(min_count)

    def near(self, variants_of_word: set[str]) -> set[str]:
        """Learned candidates possibly within k edits of a word (see DeletionIndex.near).

        At most INDEX_PER_CALL new candidates are indexed per call, so that no reject pays
        for a whole backlog (after a reload that lowered min_count, say); the rest follow
        on the next rejects.
        """
        with self._lock:
            generation = self.counter.generation
            if generation != self._generation:
                current = self.counter.promoted()
                for gone in self._index.members - current:
                    self._index.remove(gone)
                backlog = current - self._index.members
                for new in itertools.islice(backlog, INDEX_PER_CALL):
                    self._index.add(new)
                if len(backlog) <= INDEX_PER_CALL:
                    self._generation = generation
            return self._index.near(variants_of_word)


class Suggester:
    """Finds the nearest candidate: built-in providers plus domains learned as accepted.

    Built once per runtime (cheap: the provider list is short); `learned` is shared
    across reloads.
    """

    def __init__(self, providers: Iterable[str], learned: LearnedDomains | None = None) -> None:
        self.providers = tuple(dict.fromkeys(providers))
        self._index = DeletionIndex(self.providers)
        self._learned = learned

    def suggest(
        self, domain: str, refuses_mail: Callable[[str], bool] = lambda _domain: False
    ) -> Suggestion:
        """The one candidate nearest to `domain`, if it is unique and close enough.

        Call only for a domain DNS has proved receives no mail. `refuses_mail` says
        whether a candidate is known (from the cache, say) not to accept mail: such a
        candidate is never proposed.
        """
        limit = max_distance(domain)
        if len(domain) > MAX_INDEXED_CHARS + limit:
            return NO_SUGGESTION
        variants = deletions(domain, limit)
        candidates = self._index.near(variants)
        if self._learned is not None:
            candidates |= self._learned.near(variants)
        candidates.discard(domain)
        near: list[tuple[int, str]] = []
        for candidate in candidates:
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
