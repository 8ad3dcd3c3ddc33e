"""Damerau-Levenshtein with a cut-off against a plain full-table implementation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nullmx_milter.edit_distance import distance


def full_table(a: str, b: str) -> int:
    """Optimal string alignment distance, the textbook full table (no band, no cut-off)."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        table[i][0] = i
    for j in range(len(b) + 1):
        table[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
    return table[len(a)][len(b)]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param("gmail.com", "gmail.com", 0, id="same"),
        pytest.param("gmial.com", "gmail.com", 1, id="transposition-counts-one"),
        pytest.param("gmai.com", "gmail.com", 1, id="deletion"),
        pytest.param("gmaill.com", "gmail.com", 1, id="insertion"),
        pytest.param("gnail.com", "gmail.com", 1, id="substitution"),
        pytest.param("yho.com", "yahoo.com", 2, id="two-deletions"),
        pytest.param("htomali.com", "hotmail.com", 2, id="two-transpositions"),
        pytest.param("ca", "abc", 3, id="osa-not-unrestricted"),
        pytest.param("", "ab", 2, id="empty"),
    ],
)
def test_known_distances(a: str, b: str, expected: int) -> None:
    assert distance(a, b, 5) == expected
    assert distance(b, a, 5) == expected


def test_over_the_limit_is_limit_plus_one() -> None:
    assert distance("gmail.com", "yahoo.com", 2) == 3
    assert distance("a", "abcdef", 1) == 2


alphabet = st.text(alphabet="abcm.-l", max_size=12)


@settings(max_examples=800)
@given(alphabet, alphabet, st.integers(min_value=0, max_value=4))
def test_matches_full_table_up_to_the_limit(a: str, b: str, limit: int) -> None:
    exact = full_table(a, b)
    assert distance(a, b, limit) == min(exact, limit + 1)
