"""Load and soak: many concurrent milter sessions, mixed verdicts, every reply checked.

`make soak` (or `python tests/soak.py --rcpts 100000`) starts Knot and the daemon, sends a
warm-up batch, then the main batch, and prints the figures; it exits 1 on any error, any
wrong reply, RSS growth over 5 % after warm-up, or threads/fds above the warm-up level.
The test suite runs a short version (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from daemon_process import MilterDaemon
from dns_stub import wait_until
from knot import KnotServer
from milter_client import MilterAnswer, MilterClient
from process_stats import ProcessStats, process_stats
from reply_checks import check_smtp_lines

RCPTS_PER_SESSION = 50
MAX_RSS_GROWTH = 0.05
WARM_UP_SHARE = 0.1
# One full cycle of MIX x the nx*.test domains, so every domain is cached after warm-up.
WARM_UP_MIN = 1500
# (recipient pattern, expected verdict) over tests/zones: n makes every address distinct,
# the nx*.test domains (500 of them, NXDOMAIN) keep the cache busy but bounded.
MIX = (
    ("<u{n}@null.test>", "556"),
    ("<u{n}@real.test>", "continue"),
    ("<u{n}@mixed.test>", "continue"),
    ("<u{n}@implicit.test>", "continue"),
    ("<u{n}@nx{m}.test>", "continue"),
    ("<u{n}@b\u00fccher.test>", "556"),
    ("<u{n}@x.broken.test>", "continue"),
    ("<u{n}@cname-null.test>", "556"),
    ("<postmaster>", "continue"),
    ("<u{n}@[192.0.2.1]>", "continue"),
    ("<u{n}@to-real.example>", "continue"),
    ("<u{n}@null10.test>", "556"),
)


def recipient(index: int) -> tuple[str, str]:
    pattern, expected = MIX[index % len(MIX)]
    return pattern.format(n=index, m=index % 500), expected


def wrong_answer(address: str, expected: str, answer: MilterAnswer) -> str:
    """'' when `answer` is the right one for `address`, else a description."""
    got = answer.code or answer.kind
    if got != expected:
        return f"{address}: {got} != {expected}"
    if answer.code:
        lines = answer.lines()
        try:
            check_smtp_lines(lines, answer.code)
        except AssertionError as error:
            return f"{address}: {error}"
        local_part = address[: address.index("@") + 1]
        if not lines[0].startswith(f"556-5.1.10 {local_part}"):
            return f"{address}: wrong text {lines[0]!r}"
    return ""


@dataclass
class BatchResult:
    sent: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.sent += other.sent
        self.rejected += other.rejected
        self.errors += other.errors[:5]
        self.wrong += other.wrong[:5]


def _session_thread(
    port: int, indexes: list[int], result: BatchResult, lock: threading.Lock
) -> None:
    for start in range(0, len(indexes), RCPTS_PER_SESSION):
        local = BatchResult()
        try:
            with MilterClient(port, timeout=30) as client:
                client.mail("<sender@real.test>")
                for index in indexes[start : start + RCPTS_PER_SESSION]:
                    address, expected = recipient(index)
                    answer = client.rcpt(address, queue_id=f"Q{index}")
                    local.sent += 1
                    local.rejected += answer.code == "556"
                    problem = wrong_answer(address, expected, answer)
                    if problem:
                        local.wrong.append(problem)
        except (OSError, EOFError, ValueError) as error:
            local.errors.append(repr(error))
        with lock:
            result.add(local)


def run_worker(port: int, indexes: list[int], sessions: int) -> BatchResult:
    """One client process: `sessions` concurrent milter sessions over its share of RCPTs."""
    result = BatchResult()
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=_session_thread, args=(port, indexes[offset::sessions], result, lock)
        )
        for offset in range(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def run_batch(port: int, indexes: range, processes: int, sessions: int) -> BatchResult:
    """Send RCPTs numbered `indexes` from `processes` x `sessions` concurrent sessions."""
    result = BatchResult()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        shares = [list(indexes[offset::processes]) for offset in range(processes)]
        for share_result in pool.map(
            run_worker, itertools.repeat(port), shares, itertools.repeat(sessions)
        ):
            result.add(share_result)
    return result


@dataclass
class SoakReport:
    rcpts: int
    seconds: float
    result: BatchResult
    warm: ProcessStats
    end: ProcessStats

    @property
    def rss_growth(self) -> float:
        return (self.end.rss_kib - self.warm.rss_kib) / self.warm.rss_kib

    def problems(self) -> list[str]:
        found = [f"error: {error}" for error in self.result.errors]
        found += [f"wrong: {wrong}" for wrong in self.result.wrong]
        if self.result.sent != self.rcpts:
            found.append(f"sent {self.result.sent} of {self.rcpts} RCPTs")
        if self.rss_growth >= MAX_RSS_GROWTH:
            found.append(f"RSS grew {self.rss_growth:.1%} after warm-up")
        if self.end.threads > self.warm.threads or self.end.fds > self.warm.fds:
            found.append(f"threads/fds grew: {self.warm} -> {self.end}")
        return found

    def figures(self) -> str:
        return (
            f"soak: {self.result.sent} RCPTs in {self.seconds:.1f}s "
            f"({self.result.sent / self.seconds:.0f}/s), {self.result.rejected} rejected (556), "
            f"{len(self.result.wrong)} wrong, {len(self.result.errors)} errors; "
            f"RSS {self.warm.rss_kib} -> {self.end.rss_kib} KiB ({self.rss_growth:+.2%}); "
            f"threads {self.warm.threads} -> {self.end.threads}; "
            f"fds {self.warm.fds} -> {self.end.fds}"
        )


def idle_stats(pid: int, ceiling: ProcessStats | None = None) -> ProcessStats:
    """The figures once the sessions of a batch are gone (threads/fds may lag a little)."""
    latest: list[ProcessStats] = []

    def settled() -> bool:
        latest.append(process_stats(pid))
        if ceiling is None:
            return len(latest) > 1 and latest[-1].threads == latest[-2].threads
        return latest[-1].threads <= ceiling.threads and latest[-1].fds <= ceiling.fds

    with contextlib.suppress(TimeoutError):
        wait_until(settled, 15, interval=0.2)
    return latest[-1]


def soak(port: int, pid: int, rcpts: int, processes: int = 4, sessions: int = 4) -> SoakReport:
    """Warm up, then send `rcpts` RCPTs; the figures compare the end with the warm state."""
    warm_up = max(int(rcpts * WARM_UP_SHARE), WARM_UP_MIN)
    run_batch(port, range(rcpts, rcpts + warm_up), processes, sessions)
    warm = idle_stats(pid)
    started = time.monotonic()
    result = run_batch(port, range(rcpts), processes, sessions)
    seconds = time.monotonic() - started
    return SoakReport(rcpts, seconds, result, warm, idle_stats(pid, warm))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rcpts", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=4, help="per client process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nullmx-soak-") as directory:
        workdir = Path(directory)
        (workdir / "knot").mkdir()
        (workdir / "daemon").mkdir()
        knot = KnotServer(workdir / "knot").start()
        daemon = MilterDaemon(workdir / "daemon", [knot.nameserver])
        try:
            daemon.start()
            assert daemon.process is not None
            report = soak(
                daemon.milter_port, daemon.process.pid, args.rcpts, args.processes, args.sessions
            )
        finally:
            daemon.stop()
            knot.stop()
    print(report.figures())
    for problem in report.problems():
        print(problem)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
