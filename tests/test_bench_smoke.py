"""The benchmark harness works (bench/, `make bench`): tiny sizes, no timing targets."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from c_milter import build_null_milter
from knot import free_port
from milter_alone import (
    DNSSEC_CASE,
    DNSSEC_CONNECTIONS,
    SMOKE,
    nullmx_answer,
    run_milter_alone,
    running_process,
)
from milter_load import run_load
from report import (
    BEGIN,
    END,
    postfix_section,
    render,
    stop_section,
    write_readme,
    write_readme_stop,
)
from stop_time import SOCKETS, STOP_SMOKE, run_stop_time
from suggest_cost import SUGGEST_SMOKE, run_suggest_cost, suggest_section
from through_postfix import CASES, ONE_SESSION_ONLY, POSTFIX_SMOKE, run_through_postfix

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.bench


@pytest.mark.integration
def test_harness_measures_and_writes_the_readme(tmp_path: Path) -> None:
    results = run_milter_alone(tmp_path, build_null_milter(tmp_path), SMOKE)

    cases = {(row.case, row.connections) for row in results.rows}
    for connections in (1, 10, 50):
        for case in ("do-nothing C milter", "warm cache", "cold cache", "Knot alone (same names)"):
            assert (case, connections) in cases
    for mode in ("off", "require"):
        for connections in DNSSEC_CONNECTIONS:
            assert (f"{DNSSEC_CASE} {mode}", connections) in cases
    assert all(results.dnssec_lookup[mode] > 0 for mode in ("off", "require", "dnspython"))
    assert all(row.rate > 0 and 0 < row.p50 <= row.p99 for row in results.rows)
    # Coalescing: many RCPTs for one uncached domain, one query at the DNS server.
    assert results.coalescing["queries_at_server"] == 1
    assert results.coalescing["misses"] == 1
    assert results.coalescing["coalesced"] + results.coalescing["hits"] == SMOKE.coalesce_rcpts - 1
    assert results.memory["cache_entries"] == SMOKE.memory_domains
    assert results.memory["rss_after"] > 0

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n\n{BEGIN}\nSTALE-TEXT\n{END}\n\nafter\n")
    write_readme(readme, render(results))
    text = readme.read_text()
    assert "STALE-TEXT" not in text
    assert "| warm cache | 10 |" in text
    assert "CPU µs require | CPU ratio" in text
    assert "The cold lookup alone" in text
    assert text.endswith(f"{END}\n\nafter\n")


@pytest.mark.integration
def test_null_pymilter_answers() -> None:
    # Case (e) of the Postfix benchmark: a broken import must show here, not mid-benchmark.
    port = free_port(socket.SOCK_STREAM)
    command = [sys.executable, str(BENCH / "null_pymilter.py"), f"inet:{port}@127.0.0.1"]
    with running_process(command, port):
        result = run_load(("127.0.0.1", port), [["a@b.test", "c@d.test"]] * 3)
    assert result.answers == {"c": 6}


@pytest.mark.integration
def test_load_client_fails_loudly_on_a_wrong_answer() -> None:
    # d0.bench publishes a null MX: a milter that lets it through answered wrong, and a run
    # with such answers must not yield a figure.
    port = free_port(socket.SOCK_STREAM)
    command = [sys.executable, str(BENCH / "null_pymilter.py"), f"inet:{port}@127.0.0.1"]
    with running_process(command, port):
        result = run_load(
            ("127.0.0.1", port), [["user0@d0.bench", "user1@d1.bench"]], expect=nullmx_answer
        )
    assert result.answers == {"c": 2}
    assert len(result.wrong) == 1
    assert "request 0: answered 'c', expected '556'" in result.wrong[0]
    with pytest.raises(RuntimeError, match="1 wrong answers"):
        result.check(2)


@pytest.mark.mta
def test_postfix_harness_runs_every_case(tmp_path: Path) -> None:
    results = run_through_postfix(build_null_milter(tmp_path), POSTFIX_SMOKE)
    for case in CASES:
        assert results.median(case, 1) > 0
        if case not in ONE_SESSION_ONLY:
            assert results.median(case, 20) > 0
    assert set(results.cpu_per_message) == {"c", "d", "e", "f", "i", "j"}
    section = postfix_section(results)
    assert "| 1 session: (d) ≥ 0.85 x (a) |" in section
    assert "| 20 sessions: (i) ≥ 0.98 x (b) |" in section
    assert render(None, section).count("**Through Postfix**") == 1


def test_suggestion_cost_case_measures_and_renders() -> None:
    cost = run_suggest_cost(SUGGEST_SMOKE)
    assert cost.candidates == SUGGEST_SMOKE.learned + 38
    assert 0 < cost.p50 <= cost.p99 <= cost.worst
    assert cost.offered > 0 and cost.add_seconds > 0
    assert cost.check_before > 0 and cost.check_after > 0
    section = suggest_section(cost)
    assert "| a suggestion < 1 ms per rejected address, 50 learned + 38 built-in" in section
    assert render(None, suggest=section).count('**"Did you mean"') == 1


@pytest.mark.integration
def test_stop_time_case_measures_and_renders(tmp_path: Path) -> None:
    times = run_stop_time(tmp_path, STOP_SMOKE)
    assert set(times.seconds) == set(SOCKETS)
    assert all(len(seconds) == STOP_SMOKE.stops for seconds in times.seconds.values())
    assert all(0 < times.worst(case) < 30 for case in SOCKETS)
    assert all(0 < (times.median_logged(case) or 0) <= times.median(case) for case in SOCKETS)
    section = stop_section(times)
    assert "| nullmx-milter, fd:3 (socket activation) | 1 |" in section
    assert "| stop: median of 1 < 1 s (unix) |" in section
    assert render(None, "", section).count("**Stop time**") == 1
    # Alone, it is added to the block once, then rewritten in place; the rest stays.
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nOTHER-FIGURES\n{END}\n\nafter\n")
    write_readme_stop(readme, "STOP-1")
    write_readme_stop(readme, section)
    text = readme.read_text()
    assert "STOP-1" not in text
    assert text.count("**Stop time**") == 1
    assert text.index("OTHER-FIGURES") < text.index("**Stop time**") < text.index(END)
    assert text.endswith(f"{END}\n\nafter\n")
