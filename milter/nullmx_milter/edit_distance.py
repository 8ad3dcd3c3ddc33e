"""Damerau-Levenshtein distance (optimal string alignment) with an early cut-off."""

from __future__ import annotations


def distance(a: str, b: str, limit: int) -> int:
    """The edit distance of `a` and `b`, a swap of two neighbours counting 1.

    Exact up to `limit`; any larger distance is returned as `limit + 1`, found out as
    soon as a whole row of the table is over the limit. Only the diagonal band of
    width 2 * limit + 1 is computed: a cell outside it is over the limit anyway.
    """
    over = limit + 1
    if a == b:
        return 0
    if abs(len(a) - len(b)) > limit:
        return over
    # A shared prefix and suffix cost nothing and leave a short core to compare.
    start = 0
    shortest = min(len(a), len(b))
    while start < shortest and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a = a[start:end_a]
    b = b[start:end_b]
    rows, cols = len(a), len(b)
    if rows == 0 or cols == 0:
        return min(rows + cols, over)
    before = [over] * (cols + 1)
    previous = [min(j, over) for j in range(cols + 1)]
    for i in range(1, rows + 1):
        current = [over] * (cols + 1)
        current[0] = min(i, over)
        char = a[i - 1]
        before_char = a[i - 2] if i > 1 else ""
        for j in range(max(1, i - limit), min(cols, i + limit) + 1):
            other = b[j - 1]
            cost = previous[j - 1] + (char != other)
            value = previous[j] + 1
            value = min(value, cost)
            value = min(value, current[j - 1] + 1)
            if j > 1 and char == b[j - 2] and before_char == other and before[j - 2] + 1 < value:
                value = before[j - 2] + 1
            current[j] = value if value < over else over
        if min(current) > limit:
            return over
        before, previous = previous, current
    return previous[cols]
