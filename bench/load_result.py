"""What one load run measured, for the milter and DNS load clients alike."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (which must be sorted)."""
    if not values:
        return float("nan")
    rank = max(0, min(len(values) - 1, round(fraction * len(values) + 0.5) - 1))
    return values[rank]


@dataclass
class LoadResult:
    """What one load run measured."""

    connections: int
    rcpts: int
    seconds: float
    client_cpu: float
    latencies: list[float] = field(repr=False)
    answers: Counter[str] = field(default_factory=Counter)
    # Answers that differ from what the request had to get (one line each).
    wrong: list[str] = field(default_factory=list)

    def check(self, expected_rcpts: int) -> None:
        """Fail loudly unless every request was answered, each as it had to be."""
        if self.wrong:
            raise RuntimeError(
                f"{len(self.wrong)} wrong answers (of {self.rcpts}): " + "; ".join(self.wrong[:5])
            )
        if self.rcpts != expected_rcpts:
            raise RuntimeError(f"sent {expected_rcpts} requests, got {self.rcpts} answers")

    @property
    def rate(self) -> float:
        return self.rcpts / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def client_cpu_per_rcpt(self) -> float:
        return self.client_cpu / self.rcpts if self.rcpts else 0.0
