"""The milter alone: warm/cold RCPT rate and latency, coalescing, and memory (docs/performance.md).

The real daemon (installed console script) runs against a real Knot serving a generated
zone; the load client speaks the milter protocol. Sizes come from `Sizes`, so the smoke
test runs the very same code on a few hundred recipients.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.endpoints import Nameserver

from daemon_process import MilterDaemon, reap, wait_for_port
from dns_load import run_dns_load
from dns_proxy import CountingDnsProxy
from knot import KnotServer, free_port
from milter_load import LoadResult, run_load
from zone import HOSTED_SHARE, NULL_MX_EVERY, domain, zone_text

CONCURRENCY = (1, 10, 50)
# The paced runs: the warm target rate at its latency target's concurrency, and a
# cold rate well inside what one Python process resolves.
PACED_CONNECTIONS = 10
WARM_OFFERED = 5_000.0
COLD_OFFERED = 500.0
# Cold lookups against a signed zone, dns.dnssec "off" against "require".
DNSSEC_CONNECTIONS = (1, 10)
DNSSEC_CASE = "cold cache, signed zone, dnssec"
DNSSEC_WARM_UP = 50


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    rounds: int = 3
    warm_rcpts: int = 20_000
    warm_domains: int = 1_000
    cold_rcpts: int = 3_000
    coalesce_rcpts: int = 100
    memory_domains: int = 100_000

    @property
    def zone_domains(self) -> int:
        cold = (len(CONCURRENCY) + 1) * self.rounds * self.cold_rcpts
        return self.memory_domains + self.warm_domains + 2 * cold + 10


SMOKE = Sizes(
    rounds=1, warm_rcpts=300, warm_domains=50, cold_rcpts=100, coalesce_rcpts=20,
    memory_domains=500,
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    """Medians over rounds for one (cache, connections) cell."""

    case: str
    connections: int
    offered: float | None
    rate: float
    p50: float
    p99: float
    milter_cpu_per_rcpt: float = 0.0
    client_cpu_per_rcpt: float = 0.0


@dataclass
class MilterAloneResults:
    rows: list[Row] = field(default_factory=list)
    coalescing: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    # CPU µs per cold lookup in this process: "off", "require" (lean path), "dnspython".
    dnssec_lookup: dict[str, float] = field(default_factory=dict)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def metric_value(metrics_text: str, sample: str) -> float:
    """The value of one sample line (`name{labels}`) in exposition text."""
    for line in metrics_text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(sample)


def _daemon_pid(daemon: MilterDaemon) -> int:
    assert daemon.process is not None
    return daemon.process.pid


def _median_row(
    case: str,
    connections: int,
    runs: Sequence[tuple[LoadResult, float]],
    offered: float | None = None,
) -> Row:
    return Row(
        case,
        connections,
        offered,
        rate=statistics.median(result.rate for result, _ in runs),
        p50=statistics.median(result.p50 for result, _ in runs),
        p99=statistics.median(result.p99 for result, _ in runs),
        milter_cpu_per_rcpt=statistics.median(cpu / result.rcpts for result, cpu in runs),
        client_cpu_per_rcpt=statistics.median(result.client_cpu_per_rcpt for result, _ in runs),
    )


def _split(items: Sequence[str], parts: int) -> list[list[str]]:
    """`items` dealt round-robin over `parts` connections."""
    return [list(items[index::parts]) for index in range(parts)]


def _expect_answers(result: LoadResult, expected: int) -> None:
    """Every request answered, and (where the run said what to expect) answered right."""
    result.check(expected)


def nullmx_answer(recipient: str) -> str:
    """What nullmx-milter must answer for a recipient in the bench zone: 556 for the null-MX
    domains, continue for the others (a fast 451 must not count as a served RCPT)."""
    number = int(recipient.rsplit("@", 1)[1].split(".", maxsplit=1)[0].removeprefix("d"))
    return "556" if number % NULL_MX_EVERY == 0 else "c"


def continue_answer(_recipient: str) -> str:
    """What a do-nothing milter must answer."""
    return "c"


def _recipients(first: int, count: int) -> list[str]:
    return [f"user{number}@{domain(number)}" for number in range(first, first + count)]


class DomainCounter:
    """Hands out never-used domain numbers, so every cold RCPT is really cold."""

    def __init__(self, first: int) -> None:
        self._next = first

    def take(self, count: int) -> list[str]:
        taken = _recipients(self._next, count)
        self._next += count
        return taken


@contextmanager
def knot_with_zone(workdir: Path, domains: int) -> Iterator[KnotServer]:
    """Knot serving the generated bench. zone beside the test zones."""
    knot_dir = workdir / "knot"
    shutil.rmtree(knot_dir, ignore_errors=True)
    knot_dir.mkdir(parents=True)
    server = KnotServer(knot_dir).start(extra_zones={"bench.": zone_text(domains)})
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_daemon(
    workdir: Path,
    stopping: list[subprocess.Popen[bytes]],
    nameservers: list[str],
    extra: str = "",
    dns_options: str = "timeout = 1.0\n",
) -> Iterator[MilterDaemon]:
    """The real daemon; on the way out it gets SIGTERM and joins `stopping` (libmilter
    takes seconds to exit: the caller waits for all of them at once)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    daemon = MilterDaemon(workdir, nameservers, extra, dns_options=dns_options).start()
    try:
        yield daemon
    finally:
        process = daemon.terminate()
        if process is not None:
            stopping.append(process)


@contextmanager
def running_process(command: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A do-nothing milter (or anything that listens on `port`) for the length of a block.

    SIGKILL at the end: it holds no state, and pymilter takes seconds to obey SIGTERM.
    """
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield process
    finally:
        process.kill()
        process.wait()


def measure_load(
    address: tuple[str, int],
    pid: int,
    recipients: list[list[str]],
    rate: float | None = None,
    expect: Callable[[str], str] = nullmx_answer,
) -> tuple[LoadResult, float]:
    """One load run (every answer checked) and the milter process's CPU seconds during it."""
    cpu_before = cpu_seconds(pid)
    result = run_load(address, recipients, rate=rate, expect=expect)
    _expect_answers(result, sum(len(batch) for batch in recipients))
    return result, cpu_seconds(pid) - cpu_before


def do_nothing_rows(name: str, command: list[str], port: int, sizes: Sizes) -> list[Row]:
    """A do-nothing milter under the same load: the floor (and the load client's speed)."""
    rows = []
    with running_process(command, port) as process:
        address = ("127.0.0.1", port)
        for connections in CONCURRENCY:
            recipients = _split(_recipients(0, sizes.warm_rcpts), connections)
            runs = [
                measure_load(address, process.pid, recipients, expect=continue_answer)
                for _ in range(sizes.rounds)
            ]
            rows.append(_median_row(name, connections, runs))
        recipients = _split(_recipients(0, sizes.warm_rcpts), PACED_CONNECTIONS)
        runs = [
            measure_load(address, process.pid, recipients, WARM_OFFERED, continue_answer)
            for _ in range(sizes.rounds)
        ]
        rows.append(_median_row(name, PACED_CONNECTIONS, runs, WARM_OFFERED))
    return rows


def baseline_rows(null_milter: Path, sizes: Sizes) -> list[Row]:
    """The do-nothing C milter and the do-nothing pymilter milter."""
    c_port = free_port(socket.SOCK_STREAM)
    py_port = free_port(socket.SOCK_STREAM)
    null_pymilter = [sys.executable, str(Path(__file__).parent / "null_pymilter.py")]
    return [
        *do_nothing_rows(
            "do-nothing C milter", [str(null_milter), f"inet:{c_port}@127.0.0.1"], c_port, sizes
        ),
        *do_nothing_rows(
            "do-nothing pymilter", [*null_pymilter, f"inet:{py_port}@127.0.0.1"], py_port, sizes
        ),
    ]


def warm_and_cold_rows(
    knot: KnotServer,
    workdir: Path,
    stopping: list[subprocess.Popen[bytes]],
    sizes: Sizes,
    first_domain: int,
) -> list[Row]:
    """Warm and cold RCPT rate/latency at each concurrency, and Knot's own answer time."""
    rows: list[Row] = []
    fresh = DomainCounter(first_domain)
    with running_daemon(workdir / "daemon-load", stopping, [knot.nameserver]) as daemon:
        address = ("127.0.0.1", daemon.milter_port)
        pid = _daemon_pid(daemon)
        warm_set = fresh.take(sizes.warm_domains)
        measure_load(address, pid, _split(warm_set, 10))
        warm = [warm_set[index % len(warm_set)] for index in range(sizes.warm_rcpts)]
        for connections in CONCURRENCY:
            runs = [
                measure_load(address, pid, _split(warm, connections))
                for _round in range(sizes.rounds)
            ]
            rows.append(_median_row("warm cache", connections, runs))
        paced = _split(warm, PACED_CONNECTIONS)
        runs = [measure_load(address, pid, paced, WARM_OFFERED) for _ in range(sizes.rounds)]
        rows.append(_median_row("warm cache", PACED_CONNECTIONS, runs, WARM_OFFERED))
        for connections in CONCURRENCY:
            cold_runs = []
            dns_runs = []
            for _round in range(sizes.rounds):
                cold_runs.append(
                    measure_load(address, pid, _split(fresh.take(sizes.cold_rcpts), connections))
                )
                names = [rcpt.split("@")[1] for rcpt in fresh.take(sizes.cold_rcpts)]
                dns = run_dns_load(("127.0.0.1", knot.port), _split(names, connections))
                _expect_answers(dns, len(names))
                dns_runs.append((dns, 0.0))
            rows.append(_median_row("cold cache", connections, cold_runs))
            rows.append(_median_row("Knot alone (same names)", connections, dns_runs))
        cold_runs = []
        dns_runs = []
        paced_count = max(PACED_CONNECTIONS, sizes.cold_rcpts // 2)
        for _round in range(sizes.rounds):
            batches = _split(fresh.take(paced_count), PACED_CONNECTIONS)
            cold_runs.append(measure_load(address, pid, batches, COLD_OFFERED))
            domains = [rcpt.split("@")[1] for rcpt in fresh.take(paced_count)]
            dns = run_dns_load(
                ("127.0.0.1", knot.port), _split(domains, PACED_CONNECTIONS), rate=COLD_OFFERED
            )
            _expect_answers(dns, paced_count)
            dns_runs.append((dns, 0.0))
        rows.append(_median_row("cold cache", PACED_CONNECTIONS, cold_runs, COLD_OFFERED))
        rows.append(
            _median_row("Knot alone (same names)", PACED_CONNECTIONS, dns_runs, COLD_OFFERED)
        )
    return rows


def dnssec_rows(
    workdir: Path, stopping: list[subprocess.Popen[bytes]], sizes: Sizes
) -> tuple[list[Row], dict[str, float]]:
    """Cold RCPTs with dns.dnssec "off" and "require", side by side: what DNSSEC costs.

    A second Knot serves the generated zone signed. Two daemons, one per mode, run at once
    and take turns: each round sends the same new names to one, then to the other (each has
    its own cache), so that the shared host's load drifts over both alike. Under "require"
    every query sets DO and AD and every answer carries the MX set's RRSIG (Knot, being
    authoritative, sets no AD, so null MX are let through: the lookup work is the same).
    """
    per_mode = DNSSEC_WARM_UP + len(DNSSEC_CONNECTIONS) * sizes.rounds * sizes.cold_rcpts
    lookup_names = [domain(per_mode + 1 + index) for index in range(2 * sizes.cold_rcpts)]
    knot_dir = workdir / "knot-signed"
    shutil.rmtree(knot_dir, ignore_errors=True)
    knot_dir.mkdir(parents=True)
    server = KnotServer(knot_dir).start(
        extra_zones={"bench.": zone_text(per_mode + 1 + len(lookup_names))}, signed=("bench.",)
    )
    modes = ("off", "require")
    runs: dict[tuple[str, int], list[tuple[LoadResult, float]]] = {}
    try:
        with contextlib.ExitStack() as daemons:
            started = {
                mode: daemons.enter_context(
                    running_daemon(
                        workdir / f"daemon-dnssec-{mode}",
                        stopping,
                        [server.nameserver],
                        dns_options=f'timeout = 1.0\ndnssec = "{mode}"\ndnssec_probe = ""\n',
                    )
                )
                for mode in modes
            }
            # Without AD from Knot, "require" lets every null MX through: it answers continue.
            expect = {"off": nullmx_answer, "require": continue_answer}
            fresh = DomainCounter(1)
            warm_up = _split(fresh.take(DNSSEC_WARM_UP), 10)
            for mode, daemon in started.items():
                measure_load(
                    ("127.0.0.1", daemon.milter_port),
                    _daemon_pid(daemon),
                    warm_up,
                    expect=expect[mode],
                )
            for connections in DNSSEC_CONNECTIONS:
                for round_number in range(sizes.rounds):
                    batches = _split(fresh.take(sizes.cold_rcpts), connections)
                    # Who goes first alternates, so neither always meets a colder host.
                    order = modes if round_number % 2 == 0 else modes[::-1]
                    for mode in order:
                        daemon = started[mode]
                        address = ("127.0.0.1", daemon.milter_port)
                        result = measure_load(
                            address, _daemon_pid(daemon), batches, expect=expect[mode]
                        )
                        runs.setdefault((mode, connections), []).append(result)
        lookup_cpu = dnssec_lookup_cpu(server, lookup_names)
    finally:
        server.stop()
    rows = [
        _median_row(f"{DNSSEC_CASE} {mode}", connections, runs[(mode, connections)])
        for mode in modes
        for connections in DNSSEC_CONNECTIONS
    ]
    return rows, lookup_cpu


def dnssec_lookup_cpu(server: KnotServer, names: list[str], chunk: int = 100) -> dict[str, float]:
    """CPU µs per cold MxResolver.lookup in this process, without the milter protocol around
    it: "off" and "require" (both on the lean UDP path) taking turns chunk by chunk on the
    same names (each resolver without a cache), and "dnspython" (require, lean path off)."""
    nameservers = [Nameserver("127.0.0.1", server.port)]
    spent = {"off": 0.0, "require": 0.0, "dnspython": 0.0}
    counted = {"off": 0, "require": 0, "dnspython": 0}
    half = len(names) // 2
    for start in range(0, half, chunk):
        batch = names[start : start + chunk]
        modes = ("off", "require") if (start // chunk) % 2 == 0 else ("require", "off")
        for mode in modes:
            resolver = MxResolver(nameservers, 2.0, dnssec=mode == "require")
            began = time.process_time()
            for name in batch:
                resolver.lookup(name)
            spent[mode] += time.process_time() - began
            counted[mode] += len(batch)
    slow = MxResolver(nameservers, 2.0, fast_path=False, dnssec=True)
    began = time.process_time()
    for name in names[half:]:
        slow.lookup(name)
    spent["dnspython"] = time.process_time() - began
    counted["dnspython"] = len(names) - half
    return {mode: spent[mode] / max(1, counted[mode]) * 1e6 for mode in spent}


def coalescing(
    knot: KnotServer,
    workdir: Path,
    stopping: list[subprocess.Popen[bytes]],
    sizes: Sizes,
    first_domain: int,
) -> dict[str, float]:
    """N concurrent RCPTs for one cold domain, counted at a proxy in front of Knot."""
    proxy = CountingDnsProxy(("127.0.0.1", knot.port), delay=0.2).start()
    try:
        with running_daemon(workdir / "daemon-coalesce", stopping, [proxy.nameserver]) as daemon:
            name = domain(first_domain)
            recipients = [[f"user{index}@{name}"] for index in range(sizes.coalesce_rcpts)]
            result = run_load(("127.0.0.1", daemon.milter_port), recipients, expect=nullmx_answer)
            _expect_answers(result, sizes.coalesce_rcpts)
            text = daemon.metrics_text()
            return {
                "rcpts": float(sizes.coalesce_rcpts),
                "queries_at_server": float(proxy.count(name)),
                "coalesced": metric_value(text, 'nullmx_cache_requests_total{result="coalesced"}'),
                "misses": metric_value(text, 'nullmx_cache_requests_total{result="miss"}'),
                "hits": metric_value(text, 'nullmx_cache_requests_total{result="hit"}'),
                "max_latency": result.latencies[-1],
            }
    finally:
        proxy.stop()


def memory(
    knot: KnotServer, workdir: Path, stopping: list[subprocess.Popen[bytes]], sizes: Sizes
) -> dict[str, float]:
    """RSS of a fresh daemon before and after caching `memory_domains` distinct domains."""
    extra = f"[cache]\nmax_entries = {sizes.memory_domains}\n"
    with running_daemon(workdir / "daemon-memory", stopping, [knot.nameserver], extra) as daemon:
        pid = _daemon_pid(daemon)
        address = ("127.0.0.1", daemon.milter_port)
        _expect_answers(run_load(address, [["warmup@" + domain(1)]], expect=nullmx_answer), 1)
        before = rss_bytes(pid)
        recipients = _recipients(0, sizes.memory_domains)
        result = run_load(address, _split(recipients, 10), expect=nullmx_answer)
        _expect_answers(result, sizes.memory_domains)
        after = rss_bytes(pid)
        entries = metric_value(daemon.metrics_text(), "nullmx_cache_entries")
        return {
            "domains": float(sizes.memory_domains),
            "cache_entries": entries,
            "null_mx_share": 1 / NULL_MX_EVERY,
            "hosted_share": HOSTED_SHARE / NULL_MX_EVERY,
            "rss_before": float(before),
            "rss_after": float(after),
            "bytes_per_entry": (after - before) / max(1.0, entries),
            "fill_rate": result.rate,
        }


def run_milter_alone(workdir: Path, null_milter: Path, sizes: Sizes) -> MilterAloneResults:
    """Every milter-alone measurement, in one Knot's company."""
    results = MilterAloneResults()
    results.rows.extend(baseline_rows(null_milter, sizes))
    stopping: list[subprocess.Popen[bytes]] = []
    try:
        with knot_with_zone(workdir, sizes.zone_domains) as knot:
            after_memory = sizes.memory_domains
            results.rows.extend(warm_and_cold_rows(knot, workdir, stopping, sizes, after_memory))
            last = sizes.zone_domains - 1
            results.coalescing = coalescing(knot, workdir, stopping, sizes, last)
            results.memory = memory(knot, workdir, stopping, sizes)
        dnssec, results.dnssec_lookup = dnssec_rows(workdir, stopping, sizes)
        results.rows.extend(dnssec)
    finally:
        reap(stopping)
    return results
