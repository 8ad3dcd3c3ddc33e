"""'Did you mean', top domains and the From header check through the real daemon and Knot."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from miltertest import constants

from conftest import StartDaemon
from daemon_process import MilterDaemon
from exposition import metric
from knot import KnotServer
from milter_client import MilterClient

pytestmark = pytest.mark.integration

SUGGESTION = re.compile(r"556-5\.1\.10 Did you mean <(.*)>\?")


def suggestion_lines(lines: list[str]) -> list[str]:
    return [match.group(1) for line in lines if (match := SUGGESTION.fullmatch(line))]


def status(daemon: MilterDaemon, as_json: bool) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{daemon.metrics_port}/status",
        headers={"Accept": "application/json" if as_json else "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def test_suggestions_for_provider_and_learned_typos_only(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver])
    with MilterClient(daemon.milter_port) as client:
        # A null-MX typo of a built-in provider.
        gmial = client.rcpt("<jane.doe@gmial.com>").lines()
        # A null-MX typo of a partner domain before it was ever accepted: no candidate yet.
        before = client.rcpt("<bob@partner-crop.test>").lines()
        for index in range(20):
            assert client.rcpt(f"<user{index}@partner-corp.test>").kind == "continue"
        after = client.rcpt("<bob@partner-crop.test>").lines()
        # A null-MX domain far from every candidate.
        far = client.rcpt("<a@null.test>").lines()
        # The longest local part an address may have keeps every line within the limits.
        long_local = "x" * 64 + "%y"
        longest = client.rcpt(f"<{long_local}@gmial.com>").lines()

    assert suggestion_lines(gmial) == ["jane.doe@gmail.com"]
    assert gmial[0] == "556-5.1.10 <jane.doe@gmial.com>: Recipient address rejected: " + (
        "gmial.com does not accept mail"
    )
    assert len(gmial) == 4 and gmial[-1].startswith("556 5.1.10 ")
    assert suggestion_lines(before) == [] and len(before) == 3
    assert suggestion_lines(after) == ["bob@partner-corp.test"]
    assert suggestion_lines(far) == [] and len(far) == 3
    # Over the milter protocol '%' travels doubled, as libmilter wants; the MTA undoubles it.
    assert suggestion_lines(longest) == [f"{long_local.replace('%', '%%')}@gmail.com"]
    for lines in (gmial, before, after, far, longest):
        assert all(len(line.encode()) + 2 <= 512 for line in lines), lines

    text = daemon.metrics_text()
    assert metric(text, "nullmx_suggestions_total", outcome="offered") == 3
    assert metric(text, "nullmx_suggestions_total", outcome="none") == 2
    assert "suggest=offered:gmail.com" in daemon.log()

    report = status(daemon, as_json=False)
    assert re.search(
        r"211-top rejected domains since start \(approximate: [^)]*\): "
        r"gmial\.com 2, partner-crop\.test 2, null\.test 1\n",
        report,
    ), report
    assert "211-suggestions: offered 3, tie 0, none 2\n" in report
    document = json.loads(status(daemon, as_json=True))
    rejected = document["top_rejected_domains"]
    assert [(entry["domain"], entry["count"]) for entry in rejected["domains"]] == [
        ("gmial.com", 2),
        ("partner-crop.test", 2),
        ("null.test", 1),
    ]
    assert rejected["approximate"] is True and rejected["counted"] == 5


def test_top_domains_hidden_and_suggestions_off(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(
        [knot.nameserver], "[status]\ntop_domains = 0\n[suggestions]\nenabled = false\n"
    )
    with MilterClient(daemon.milter_port) as client:
        lines = client.rcpt("<jane@gmial.com>").lines()
        assert client.rcpt("<j@x.broken.test>").kind == "continue"
    assert suggestion_lines(lines) == [] and len(lines) == 3
    assert "top rejected" not in status(daemon, as_json=False)
    assert json.loads(status(daemon, as_json=True))["top_dns_failing_domains"] is None


def test_dns_failing_domains_are_listed(knot: KnotServer, start_daemon: StartDaemon) -> None:
    daemon = start_daemon([knot.nameserver])
    with MilterClient(daemon.milter_port) as client:
        for local in ("a", "b"):
            assert client.rcpt(f"<{local}@x.broken.test>").kind == "continue"
    document = json.loads(status(daemon, as_json=True))
    failing = document["top_dns_failing_domains"]["domains"]
    assert [(entry["domain"], entry["count"]) for entry in failing] == [("x.broken.test", 2)]


HEADERS = (("Subject", "hello"), ("To", "<a@real.test>"))


@pytest.mark.parametrize(
    ("setting", "from_value", "verdict"),
    [
        pytest.param("reject", "Jane <jane@nullsender.test>", "rejected", id="reject"),
        pytest.param("reject", "jane@real.test", "accepted", id="real-from"),
        pytest.param("reject", "undisclosed:;", "skipped", id="no-address"),
        pytest.param("dry-run", "jane@nullsender.test", "would_reject", id="dry-run"),
        pytest.param("off", "jane@nullsender.test", "", id="off"),
    ],
)
def test_header_from_check(
    knot: KnotServer, start_daemon: StartDaemon, setting: str, from_value: str, verdict: str
) -> None:
    daemon = start_daemon([knot.nameserver], f'[policy]\nheader_from_null_mx = "{setting}"\n')
    with MilterClient(daemon.milter_port) as client:
        assert client.mail("<sender@real.test>").kind == "not-negotiated"
        assert client.rcpt("<a@real.test>").kind == "continue"
        negotiated_headers = not client.protocol & constants.SMFIP_NOHDRS
        answer = client.message_headers(*HEADERS, ("From", from_value))
    # Off: header callbacks are not even negotiated, so the MTA never sends headers.
    assert negotiated_headers is (setting != "off")
    if verdict == "rejected":
        assert answer.kind == "reply" and answer.code == "550"
        lines = answer.lines()
        assert all(re.match(r"550[- ]5\.7\.27 ", line) for line in lines), lines
        assert "<jane@nullsender.test>" in lines[0]
    else:
        assert answer.kind == "continue", answer
    text = daemon.metrics_text()
    checked = {
        name: metric(text, "nullmx_header_from_checks_total", verdict=name)
        for name in ("accepted", "rejected", "would_reject", "skipped")
    }
    assert checked == {name: float(name == verdict) for name in checked}
