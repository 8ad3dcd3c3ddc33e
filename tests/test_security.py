"""Security: no log injection, and a metrics listener that stays on loopback and says little."""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import tomllib
from pathlib import Path

import Milter
import pytest
from Milter import testctx

from http_page import fetch
from nullmx_milter.config import Config, config_from_dict
from nullmx_milter.daemon import build, status_source
from nullmx_milter.endpoints import split_host_port
from nullmx_milter.engine import log_decision, log_safe
from nullmx_milter.http_server import MetricsServer
from nullmx_milter.milter_adapter import NullMxSenderMilter
from nullmx_milter.mx import MxLookup
from nullmx_milter.policy import Role
from nullmx_milter.policy_service import PolicyResponder, PolicyServer

from fakes import ZoneSource
from knot import free_port
from policy_client import connect_unix, exchange

SAMPLE_CONFIG = Path(__file__).parent.parent / "config" / "nullmx-milter.toml"
INJECTION = "<x\r\nINFO nullmx_milter.engine conn=9 verdict=accepted forged=1@null.test>"


class BuggyDns(ZoneSource):
    """A bug in the DNS layer whose message quotes the attacker's text."""

    def lookup(self, domain: str) -> MxLookup:
        raise ValueError(f"boom for {domain}\r\nERROR forged line {INJECTION}")


def test_exception_log_lines_stay_one_escaped_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    components = build(
        config_from_dict({"policy": {"sender_null_mx": "reject"}}), source=BuggyDns()
    )
    monkeypatch.setattr(
        Milter,
        "factory",
        functools.partial(NullMxSenderMilter, components.engine, components.metrics),
    )
    ctx = testctx.TestCtx()
    ctx._connect()
    with caplog.at_level(logging.DEBUG, logger="nullmx_milter"):
        assert ctx._envfrom("<a@x.test>\r\nforged") == Milter.CONTINUE
        assert ctx._envrcpt("<b@y.test>\r\nforged") == Milter.CONTINUE
        assert ctx._envrcpt(INJECTION) == Milter.CONTINUE
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 3
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    for record in caplog.records:
        line = handler.format(record)
        assert "\r" not in line and "\n" not in line, line
        assert line.isascii()
    assert "forged line" in caplog.text
    assert "Traceback" in errors[0].getMessage()
    assert (
        components.metrics.registry.get_sample_value(
            "nullmx_callback_errors_total", {"stage": "envrcpt"}
        )
        == 2
    )


def test_decision_log_lines_escape_the_argument(caplog: pytest.LogCaptureFixture) -> None:
    components = build(Config(), source=ZoneSource())
    with caplog.at_level(logging.DEBUG, logger="nullmx_milter"):
        for argument in (INJECTION, "<a@null.test>\r\n250 ok", "<a@[IPv6:\r\n]>"):
            decision = components.engine.check_recipient(argument)
            log_decision(decision, Role.RECIPIENT, argument, "conn=1 qid=-")
    assert len(caplog.records) == 3
    for record in caplog.records:
        message = record.getMessage()
        assert "\r" not in message and "\n" not in message, message


def test_listeners_bind_loopback_by_default() -> None:
    default = Config().metrics.listen
    host, port = split_host_port(default)
    assert ipaddress.ip_address(host).is_loopback
    assert port is not None
    # The policy service (another front end) listens nowhere unless asked to.
    assert Config().policy_service.listen == ""
    with SAMPLE_CONFIG.open("rb") as file:
        sample = config_from_dict(tomllib.load(file))
    assert sample.metrics.listen == default
    assert sample.policy_service.listen == ""


@pytest.mark.parametrize("top_domains", [10, 0])
def test_listener_exposes_counts_and_health_never_addresses(top_domains: int) -> None:
    """Never an address; domains only in the status report's top lists, which
    status.top_domains = 0 hides (docs/security.md "What the listener exposes")."""
    config = config_from_dict({"status": {"top_domains": top_domains}})
    components = build(config, source=ZoneSource())
    assert components.engine.check_recipient("<confidential.person@null.test>").reply
    components.engine.check_recipient("<someone@private-customer.example>")
    components.engine.check_recipient("<x@servfail-customer.broken.test>")
    status = status_source(components)
    listen = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    server = MetricsServer(listen, components.metrics.registry, status.report)
    server.start()
    pages = {}
    try:
        for name, path, accept in (
            ("metrics", "/metrics", ""),
            ("status", "/status", "text/plain"),
            ("status-json", "/status", "application/json"),
            ("healthz", "/healthz", ""),
        ):
            pages[name] = fetch(f"http://{listen}{path}", accept).body  # a 503 is a page too
    finally:
        server.stop()
    for page, text in pages.items():
        for needle in ("confidential", "someone", "private-customer"):
            assert needle not in text, (page, needle)
        for domain in ("null.test", "servfail-customer.broken.test"):
            listed = page.startswith("status") and top_domains > 0
            assert (domain in text) is listed, (page, domain)
    families = {
        line.split()[2] for line in pages["metrics"].splitlines() if line.startswith("# TYPE ")
    }
    assert families
    assert all(name.startswith(("nullmx_", "process_", "python_")) for name in families)
    assert 'nullmx_recipients_total{verdict="rejected"} 1.0' in pages["metrics"]


def test_policy_service_log_lines_stay_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config()
    components = build(config, source=BuggyDns())
    server = PolicyServer(
        f"unix:{tmp_path / 'policy.sock'}",
        PolicyResponder(components.runtimes, components.metrics),
        components.metrics,
    )
    server.start()
    request = (
        b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
        b"queue_id=Q1\rINFO forged qid line\n"
        b"recipient=<x@y.test>\rINFO forged recipient line\n\n"
    )
    try:
        with (
            caplog.at_level(logging.DEBUG, logger="nullmx_milter"),
            connect_unix(str(tmp_path / "policy.sock")) as client,
        ):
            answer = exchange(client, request)
    finally:
        server.stop()
    assert answer == b"action=DUNNO\n\n"
    assert any("internal error" in record.getMessage() for record in caplog.records)
    handler = logging.StreamHandler()
    for record in caplog.records:
        line = handler.format(record)
        assert "\r" not in line and "\n" not in line, line


def test_queue_ids_are_escaped_in_decision_lines(caplog: pytest.LogCaptureFixture) -> None:
    config = Config()
    components = build(config, source=ZoneSource())
    responder = PolicyResponder(components.runtimes, components.metrics)
    with caplog.at_level(logging.DEBUG, logger="nullmx_milter"):
        action = responder.respond(
            {"protocol_state": "RCPT", "queue_id": "Q\r\nforged", "recipient": "<a@null.test>"}
        )
    assert action.startswith("556 5.1.10 ")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "qid='Q\\r\\nforged'" in message
    assert log_safe("4XyZ1234") == "4XyZ1234"
