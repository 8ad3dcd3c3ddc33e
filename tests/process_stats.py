"""Thread, file-descriptor and memory figures of a process, read from /proc."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessStats:
    threads: int
    fds: int
    rss_kib: int


def process_stats(pid: int) -> ProcessStats:
    proc = Path("/proc") / str(pid)
    rss = 0
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return ProcessStats(_count(proc / "task"), _count(proc / "fd"), rss)


def _count(directory: Path) -> int:
    return sum(1 for _ in directory.iterdir())
