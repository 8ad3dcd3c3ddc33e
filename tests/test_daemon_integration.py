"""The installed daemon on a real socket, a real milter client and a real DNS server."""

from __future__ import annotations

import re

import pytest

from conftest import StartDaemon
from exposition import metric
from knot import BlackHole, KnotServer
from milter_client import MilterClient

pytestmark = pytest.mark.integration

NULL_MX_RECIPIENTS = [
    "<a@null.test>",
    "<b@null10.test>",
    "<c@nulltwice.test>",
    "<d@cname-null.test>",
    "<e@to-null.example>",
    "<f@bücher.test>",
    "<g@xn--bcher-kva.test>",
    "<h@straße.test>",
    "<@relay.test,@other.test:i@NULL.TEST.>",
    '<"j@k"@null.test> NOTIFY=NEVER',
]
DELIVERABLE_RECIPIENTS = [
    "<a@real.test>",
    "<b@mixed.test>",
    "<c@implicit.test>",
    "<d@cname-real.test>",
    "<e@to-real.example>",
    "<f@nxdomain.test>",
    "<g@strasse.test>",
    "<postmaster>",
    "<h@[192.0.2.1]>",
    "<i@[IPv6:2001:db8::1]>",
    "<j@x.broken.test>",
    "<not an address",
]


def test_rejects_only_null_mx_recipients_of_one_transaction(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver])
    rejected: list[list[str]] = []
    with MilterClient(daemon.milter_port) as client:
        # With the sender check off the daemon asks not to see MAIL FROM at all.
        assert client.mail("<sender@real.test>").kind == "not-negotiated"
        for index, recipient in enumerate(NULL_MX_RECIPIENTS + DELIVERABLE_RECIPIENTS):
            answer = client.rcpt(recipient, queue_id=f"QID{index}")
            if recipient in NULL_MX_RECIPIENTS:
                assert answer.kind == "reply", recipient
                assert answer.code == "556"
                lines = answer.lines()
                assert len(lines) == 3
                assert all(re.match(r"556[- ]5\.1\.10 ", line) for line in lines), lines
                assert lines[-1].startswith("556 5.1.10 ")
                assert all(len(line) + 2 <= 512 for line in lines)
                rejected.append(lines)
            else:
                assert answer.kind == "continue", (recipient, answer)
    assert "null.test does not accept mail" in rejected[0][0]
    assert "RFC 7505" in rejected[0][1]
    assert "typo" in rejected[0][2]
    assert "xn--bcher-kva.test" in rejected[5][0]

    text = daemon.metrics_text()
    assert metric(text, "nullmx_replies_total", code="556", enhanced="5.1.10") == len(rejected)
    assert metric(text, "nullmx_recipients_total", verdict="rejected") == len(rejected)
    assert metric(text, "nullmx_recipients_total", verdict="skipped") == 4
    assert metric(text, "nullmx_recipients_total", verdict="accepted") == 8
    assert metric(text, "nullmx_replies_total", code="451", enhanced="4.4.3") == 0
    assert metric(text, "nullmx_dns_lookups_total", result="servfail") == 1
    assert metric(text, "nullmx_dns_lookups_total", result="mixed") == 1
    assert "qid=QID0" in daemon.log()


def test_dns_failures_follow_on_dns_error_tempfail(
    knot: KnotServer, black_hole: BlackHole, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver], '[policy]\non_dns_error = "tempfail"\n')
    timeout_daemon = start_daemon([black_hole.nameserver], '[policy]\non_dns_error = "tempfail"\n')
    with MilterClient(daemon.milter_port) as client:
        servfail = client.rcpt("<a@x.broken.test>")
        assert (servfail.kind, servfail.code) == ("reply", "451")
        assert servfail.text.startswith("4.4.3 ")
        assert client.rcpt("<b@null.test>").code == "556"
    with MilterClient(timeout_daemon.milter_port) as client:
        timeout = client.rcpt("<c@real.test>")
        assert (timeout.kind, timeout.code) == ("reply", "451")
    text = timeout_daemon.metrics_text()
    assert metric(text, "nullmx_dns_lookups_total", result="timeout") == 1
    assert metric(text, "nullmx_replies_total", code="451", enhanced="4.4.3") == 1
    assert metric(text, "nullmx_replies_total", code="556", enhanced="5.1.10") == 0


def test_dns_timeout_accepts_by_default(black_hole: BlackHole, start_daemon: StartDaemon) -> None:
    daemon = start_daemon([black_hole.nameserver])
    with MilterClient(daemon.milter_port) as client:
        assert client.rcpt("<a@null.test>").kind == "continue"
    assert metric(daemon.metrics_text(), "nullmx_recipients_total", verdict="accepted") == 1


def test_dry_run_and_allowlist_never_reject(knot: KnotServer, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(
        [knot.nameserver], '[policy]\nmode = "dry-run"\nallowlist = ["allowed.test"]\n'
    )
    with MilterClient(daemon.milter_port) as client:
        assert client.rcpt("<a@null.test>").kind == "continue"
        assert client.rcpt("<b@sub.allowed.test>").kind == "continue"
    text = daemon.metrics_text()
    assert metric(text, "nullmx_recipients_total", verdict="would_reject") == 1
    assert metric(text, "nullmx_recipients_total", verdict="accepted") == 1
    assert metric(text, "nullmx_replies_total", code="556", enhanced="5.1.10") == 0
    assert "verdict=would_reject" in daemon.log()


def test_dry_run_changes_no_answer_even_with_on_dns_error_tempfail(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(
        [knot.nameserver], '[policy]\nmode = "dry-run"\non_dns_error = "tempfail"\n'
    )
    with MilterClient(daemon.milter_port) as client:
        assert client.rcpt("<a@x.broken.test>").kind == "continue"
        assert client.rcpt("<b@null.test>").kind == "continue"
    text = daemon.metrics_text()
    assert metric(text, "nullmx_recipients_total", verdict="would_tempfail") == 1
    assert metric(text, "nullmx_recipients_total", verdict="would_reject") == 1
    assert metric(text, "nullmx_recipients_total", verdict="tempfailed") == 0
    assert metric(text, "nullmx_replies_total", code="451", enhanced="4.4.3") == 0
    assert "verdict=would_tempfail" in daemon.log()


def test_sender_check_rejects_null_mx_sender_but_not_null_path(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver], '[policy]\nsender_null_mx = "reject"\n')
    with MilterClient(daemon.milter_port) as client:
        answer = client.mail("<bounce@nullsender.test>")
        assert (answer.kind, answer.code) == ("reply", "550")
        assert all(" 5.7.27 " in f" {line[4:]}" for line in answer.lines())
    with MilterClient(daemon.milter_port) as client:
        assert client.mail("<>").kind == "continue"
        assert client.mail("<someone@real.test>").kind == "continue"
    text = daemon.metrics_text()
    assert metric(text, "nullmx_replies_total", code="550", enhanced="5.7.27") == 1
    assert metric(text, "nullmx_sender_checks_total", verdict="skipped") == 1


def test_sigterm_stops_cleanly(knot: KnotServer, start_daemon: StartDaemon) -> None:
    daemon = start_daemon([knot.nameserver])
    with MilterClient(daemon.milter_port) as client:
        assert client.rcpt("<a@real.test>").kind == "continue"
    assert daemon.stop() == 0
    assert "stopped" in daemon.log()
