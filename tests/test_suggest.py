"""The suggester: built-in and learned candidates, ties, refusals, and a real typo table."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nullmx_milter.edit_distance import distance
from nullmx_milter.suggest import (
    BUILTIN_PROVIDERS,
    INDEX_PER_CALL,
    LONG_DOMAIN_CHARS,
    DeletionIndex,
    LearnedDomains,
    Suggester,
    Suggestion,
    SuggestionOutcome,
    deletions,
    max_distance,
    suggested_address,
)

TYPOS = Path(__file__).parent / "corpus" / "provider_typos.txt"


def typo_table() -> list[tuple[str, str]]:
    pairs = []
    for line in TYPOS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            typo, intended = line.split()
            pairs.append((typo, intended))
    return pairs


def learned(*domains: tuple[str, int], min_count: int = 10) -> LearnedDomains:
    tally = LearnedDomains(1000, min_count)
    for domain, times in domains:
        for _ in range(times):
            tally.record(domain)
    return tally


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        pytest.param("gmial.com", Suggestion(SuggestionOutcome.OFFERED, "gmail.com", 1), id="swap"),
        pytest.param("yho.com", Suggestion(SuggestionOutcome.NONE), id="short-allows-one-edit"),
        pytest.param(
            "yhooo.com", Suggestion(SuggestionOutcome.OFFERED, "yahoo.com", 2), id="long-allows-two"
        ),
        pytest.param("136.com", Suggestion(SuggestionOutcome.TIE, distance=1), id="tie-abstains"),
        pytest.param("example.test", Suggestion(SuggestionOutcome.NONE), id="far-from-all"),
        pytest.param("outlook.com", Suggestion(SuggestionOutcome.NONE), id="never-itself"),
    ],
)
def test_builtin_candidates(typed: str, expected: Suggestion) -> None:
    assert Suggester(BUILTIN_PROVIDERS).suggest(typed) == expected


def test_learned_domain_is_a_candidate_once_accepted_often_enough() -> None:
    tally = learned(("partner-corp.example", 9))
    suggester = Suggester(BUILTIN_PROVIDERS, tally)
    assert suggester.suggest("partner-crop.example").outcome is SuggestionOutcome.NONE
    tally.record("partner-corp.example")
    assert suggester.suggest("partner-crop.example") == Suggestion(
        SuggestionOutcome.OFFERED, "partner-corp.example", 1
    )
    # A reload that raises the bar takes it away again; the counts are kept.
    tally.configure(1000, 11)
    assert suggester.suggest("partner-crop.example").outcome is SuggestionOutcome.NONE
    tally.configure(1000, 10)
    assert suggester.suggest("partner-crop.example").domain == "partner-corp.example"


def test_an_evicted_learned_domain_stops_being_a_candidate() -> None:
    tally = LearnedDomains(1, 2)
    suggester = Suggester((), tally)
    tally.record("partner-corp.example")
    tally.record("partner-corp.example")
    assert suggester.suggest("partner-crop.example").domain == "partner-corp.example"
    tally.record("other.example")  # replaces it: one counter only
    assert suggester.suggest("partner-crop.example").outcome is SuggestionOutcome.NONE


def test_a_candidate_known_to_refuse_mail_is_never_proposed() -> None:
    suggester = Suggester(BUILTIN_PROVIDERS)
    assert suggester.suggest("gmial.com").domain == "gmail.com"
    refused = suggester.suggest("gmial.com", lambda domain: domain == "gmail.com")
    assert refused.outcome is not SuggestionOutcome.OFFERED
    # With the nearer one refused, a farther unique one may still be proposed.
    two = Suggester(("abcdefgh.test", "abcdefxy.test"))
    assert two.suggest("abcdefgx.test", lambda domain: domain == "abcdefgh.test") == Suggestion(
        SuggestionOutcome.OFFERED, "abcdefxy.test", 2
    )


def test_the_config_list_replaces_the_builtin_one() -> None:
    suggester = Suggester(("example.org",))
    assert suggester.suggest("gmial.com").outcome is SuggestionOutcome.NONE
    assert suggester.suggest("exmaple.org").domain == "example.org"


def test_suggested_address_keeps_the_local_part() -> None:
    assert suggested_address("jane.doe@gmial.com", "gmail.com") == "jane.doe@gmail.com"
    assert suggested_address('"a@b"@gmial.com', "gmail.com") == '"a@b"@gmail.com'


def test_typo_table_from_a_published_list() -> None:
    """The typos the email_typo gem corrects (tests/corpus/provider_typos.txt says where
    from), offered as if each had a null MX. The distance cut was chosen on this table:
    with 2 edits allowed from LONG_DOMAIN_CHARS = 8 characters on, 71 of 80 get the
    intended provider and none a wrong one; with the cut at 7, aol.net gets att.net."""
    suggester = Suggester(BUILTIN_PROVIDERS)
    outcomes: dict[str, list[str]] = {"right": [], "wrong": [], "tie": [], "none": []}
    for typo, intended in typo_table():
        suggestion = suggester.suggest(typo)
        if suggestion.outcome is SuggestionOutcome.OFFERED:
            outcomes["right" if suggestion.domain == intended else "wrong"].append(typo)
        else:
            outcomes[suggestion.outcome.value].append(typo)
    assert len(typo_table()) == 80
    assert outcomes["wrong"] == []
    assert len(outcomes["right"]) == 71, outcomes
    # The misses are the typos more than the allowed distance away; none is a tie.
    assert outcomes["tie"] == []
    for typo in outcomes["none"]:
        intended = dict(typo_table())[typo]
        assert distance(typo, intended, 5) > max_distance(typo), typo
    assert LONG_DOMAIN_CHARS == 8


candidate_domains = st.lists(
    st.text(alphabet="abcdemo.", min_size=3, max_size=12), min_size=1, max_size=30, unique=True
)


@settings(max_examples=500)
@given(
    candidate_domains,
    candidate_domains,
    st.text(alphabet="abcdemo.", min_size=1, max_size=12),
    st.sets(st.text(alphabet="abcdemo.", min_size=3, max_size=12), max_size=10),
)
def test_suggestions_only_name_mail_accepting_candidates(
    providers: list[str], accepted: list[str], typed: str, refusing: set[str]
) -> None:
    tally = learned(*((domain, 3) for domain in accepted), min_count=3)
    tally.record("seen-once.example")  # below min_count: never a candidate
    suggester = Suggester(providers, tally)
    suggestion = suggester.suggest(typed, refusing.__contains__)
    candidates = (set(providers) | set(accepted)) - refusing - {typed}
    near = {c: distance(typed, c, 2) for c in candidates}
    within = {c: d for c, d in near.items() if d <= max_distance(typed)}
    if suggestion.outcome is SuggestionOutcome.OFFERED:
        assert suggestion.domain in candidates
        assert within[suggestion.domain] == suggestion.distance
        assert [c for c, d in within.items() if d == suggestion.distance] == [suggestion.domain]
        assert suggestion.distance == min(within.values())
    elif suggestion.outcome is SuggestionOutcome.TIE:
        best = min(within.values())
        assert sum(1 for d in within.values() if d == best) > 1
    else:
        assert within == {}


@settings(max_examples=500)
@given(
    st.lists(st.text(alphabet="abc.", max_size=9), max_size=12, unique=True),
    st.text(alphabet="abc.", max_size=9),
    st.integers(min_value=0, max_value=2),
)
def test_deletion_index_finds_every_member_within_the_limit(
    members: list[str], word: str, limit: int
) -> None:
    index = DeletionIndex(members)
    found = index.near(deletions(word, limit))
    for member in members:
        if distance(word, member, limit) <= limit:
            assert member in found, (word, member)
    if members:
        index.remove(members[0])
        assert members[0] not in index.near(deletions(word, limit))


def test_a_backlog_of_learned_domains_is_indexed_a_few_per_reject() -> None:
    domains = [f"partner{index:03d}-corp.example" for index in range(3 * INDEX_PER_CALL + 1)]
    tally = learned(*((domain, 10) for domain in domains))
    suggester = Suggester((), tally)
    calls = 0
    while not tally.indexed:
        suggester.suggest("unrelated.example")
        calls += 1
    assert calls == 4
    for domain in domains:
        typo = domain.replace("-corp", "-crop")
        assert suggester.suggest(typo).domain == domain
