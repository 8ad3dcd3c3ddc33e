"""The real daemon with dns.dnssec, behind a signing Knot and a validating unbound.

Every daemon runs inside the DNSSEC stack's namespace and is asked over the milter protocol,
its metrics listener, and the `check` and `check-config` commands.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from http_page import fetch

from daemon_process import CONSOLE_SCRIPT, MilterDaemon, toml_config
from dns_stub import wait_until
from dnssec_stack import KNOT, PLAIN, PROBE, VALIDATING, DnssecStack
from exposition import metric
from milter_client import MilterClient

pytestmark = pytest.mark.integration

SENDER = "<sender@real.signed.test>"
NULL_556 = "556 5.1.10"

StartMilter = Callable[..., MilterDaemon]


def dns_options(mode: str, probe: str = PROBE) -> str:
    return f'timeout = 1.0\ndnssec = "{mode}"\ndnssec_probe = "{probe}"\n'


@pytest.fixture
def start_milter(
    dnssec_stack: DnssecStack, tmp_path: Path, stopping_daemons: list[subprocess.Popen[bytes]]
) -> Iterator[StartMilter]:
    """start_milter(nameserver, mode, extra_config="", probe=PROBE) -> a daemon in the stack."""
    started: list[MilterDaemon] = []

    def start(nameserver: str, mode: str, extra: str = "", probe: str = PROBE) -> MilterDaemon:
        workdir = tmp_path / f"milter{len(started)}"
        workdir.mkdir()
        daemon = MilterDaemon(
            workdir,
            [nameserver],
            extra,
            command_prefix=dnssec_stack.netns.prefix,
            dns_options=dns_options(mode, probe),
        )
        started.append(daemon)
        with dnssec_stack.entered():
            return daemon.start()

    yield start
    for daemon in started:
        process = daemon.terminate()
        if process is not None:
            stopping_daemons.append(process)


def rcpt_replies(stack: DnssecStack, daemon: MilterDaemon, recipients: list[str]) -> list[str]:
    """The last reply line per recipient ("continue" when the milter let it through)."""
    found = []
    with stack.entered(), MilterClient(daemon.milter_port) as client:
        client.mail(SENDER)
        for recipient in recipients:
            answer = client.rcpt(f"<{recipient}>")
            found.append(" ".join(answer.lines()[-1].split()[:2]) if answer.code else answer.kind)
    return found


def http_get(stack: DnssecStack, daemon: MilterDaemon, path: str) -> tuple[int, str]:
    with stack.entered():
        page = fetch(f"http://127.0.0.1:{daemon.metrics_port}{path}")
    return page.status, page.body


def metrics(stack: DnssecStack, daemon: MilterDaemon) -> str:
    with stack.entered():
        return daemon.metrics_text()


def probe_state(stack: DnssecStack, daemon: MilterDaemon) -> str:
    text = metrics(stack, daemon)
    states = ("off", "pending", "validating", "not_validating", "no_answer")
    current = [state for state in states if metric(text, "nullmx_dnssec_probe_state", state=state)]
    return current[0] if len(current) == 1 else f"unclear: {current}"


def wait_for_probe(stack: DnssecStack, daemon: MilterDaemon, state: str) -> None:
    wait_until(lambda: probe_state(stack, daemon) == state, 10.0)


# (recipient, under "require" with on_dns_error = tempfail, under "off")
CASES = [
    ("a@null.signed.test", NULL_556, NULL_556),
    ("a@cname-null.signed.test", NULL_556, NULL_556),
    ("a@cname-other.signed.test", NULL_556, NULL_556),
    ("a@real.signed.test", "continue", "continue"),
    ("a@null.insecure.test", "continue", NULL_556),
    ("a@cname-insecure.signed.test", "continue", NULL_556),
    ("a@null.bogus.test", "451 4.4.3", "continue"),
]


def test_require_rejects_only_authenticated_null_mx(
    dnssec_stack: DnssecStack, start_milter: StartMilter
) -> None:
    required = start_milter(VALIDATING, "require", '[policy]\non_dns_error = "tempfail"\n')
    off = start_milter(VALIDATING, "off")
    recipients = [recipient for recipient, _, _ in CASES]
    assert rcpt_replies(dnssec_stack, required, recipients) == [case[1] for case in CASES]
    assert rcpt_replies(dnssec_stack, off, recipients) == [case[2] for case in CASES]

    text = metrics(dnssec_stack, required)
    assert metric(text, "nullmx_null_mx_unauthenticated_total", role="recipient") == 2
    assert metric(text, "nullmx_dns_lookups_total", result="servfail") == 1
    assert (
        metric(metrics(dnssec_stack, off), "nullmx_null_mx_unauthenticated_total", role="recipient")
        == 0
    )
    log = required.log()
    assert "reason=null_mx_unauthenticated domain=null.insecure.test" in log
    assert "reason=null_mx_unauthenticated domain=cname-insecure.signed.test" in log


def test_probe_through_the_validating_resolver(
    dnssec_stack: DnssecStack, start_milter: StartMilter
) -> None:
    daemon = start_milter(VALIDATING, "require")
    wait_for_probe(dnssec_stack, daemon, "validating")
    status, body = http_get(dnssec_stack, daemon, "/status")
    assert status == 200, body
    assert "211-dnssec: require; probe soa:signed.test. validating (NOERROR, AD set)" in body
    assert http_get(dnssec_stack, daemon, "/healthz") == (200, "ok\n")
    assert "DNSSEC validation works: probe=soa:signed.test." in daemon.log()


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(PLAIN, id="unbound-without-anchor"),
        pytest.param(KNOT, id="authoritative-knot"),
    ],
)
def test_probe_without_validation_makes_the_daemon_unhealthy(
    dnssec_stack: DnssecStack, start_milter: StartMilter, server: str
) -> None:
    daemon = start_milter(server, "require")
    wait_for_probe(dnssec_stack, daemon, "not_validating")
    status, body = http_get(dnssec_stack, daemon, "/healthz")
    assert status == 503
    assert body.startswith(
        "DNSSEC validation unavailable: probe soa:signed.test. answered without AD"
    )
    status, report = http_get(dnssec_stack, daemon, "/status")
    assert status == 503
    assert "211-dnssec: require; probe soa:signed.test. not validating" in report
    log = daemon.log()
    assert "WARNING" in log and "DNSSEC validation may be unavailable" in log
    assert "every null MX is now accepted" in log
    # And it is true: the signed null MX is no longer rejected through this resolver.
    assert rcpt_replies(dnssec_stack, daemon, ["a@null.signed.test"]) == ["continue"]


def test_probe_off_and_dnssec_off_stay_healthy(
    dnssec_stack: DnssecStack, start_milter: StartMilter
) -> None:
    unprobed = start_milter(PLAIN, "require", probe="")
    off = start_milter(PLAIN, "off")
    for daemon in (unprobed, off):
        assert http_get(dnssec_stack, daemon, "/healthz") == (200, "ok\n")
        assert probe_state(dnssec_stack, daemon) == "off"
    assert "211-dnssec: require; probe off" in http_get(dnssec_stack, unprobed, "/status")[1]
    assert "211-dnssec: off" in http_get(dnssec_stack, off, "/status")[1]


def run_command(
    stack: DnssecStack, tmp_path: Path, config: str, *args: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check.toml"
    path.write_text(config)
    return stack.netns.run([CONSOLE_SCRIPT, args[0], "--config", str(path), *args[1:]])


def test_check_shows_whether_dnssec_authenticated_the_null_mx(
    dnssec_stack: DnssecStack, tmp_path: Path
) -> None:
    config = f'[dns]\nnameservers = ["{VALIDATING}"]\n{dns_options("require")}'
    done = run_command(
        dnssec_stack, tmp_path, config, "check", "a@null.signed.test", "b@null.insecure.test"
    )
    assert done.returncode == 0, done.stderr
    signed, insecure = done.stdout.split("\n\n")
    assert "dnssec:   authenticated (AD set)" in signed
    assert "verdict:  rejected (null_mx)" in signed
    assert "reply:    556-5.1.10" in signed
    assert "dnssec:   not authenticated" in insecure
    assert "verdict:  accepted (null_mx_unauthenticated)" in insecure
    assert "note:     null MX, not DNSSEC-authenticated: accepted" in insecure
    assert "reply:    continue" in insecure


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_remote_resolver_needs_the_opt_in(
    dnssec_stack: DnssecStack, tmp_path: Path, command: str
) -> None:
    remote = f'[dns]\nnameservers = ["192.0.2.53"]\n{dns_options("require")}'
    extra = ["--allow-root"] if command == "run" else []
    refused = run_command(dnssec_stack, tmp_path, remote, command, *extra)
    assert refused.returncode == 2
    assert "config error: dns.nameservers: " in refused.stderr
    assert "must be a loopback address" in refused.stderr
    if command == "check-config":
        trusted = run_command(
            dnssec_stack, tmp_path, remote + "resolver_path_trusted = true\n", command
        )
        assert trusted.returncode == 0, trusted.stderr
        assert "config OK" in trusted.stdout


def reload(stack: DnssecStack, daemon: MilterDaemon, nameserver: str, options: str) -> str:
    """Rewrite the daemon's config, SIGUSR1, wait for the reload's outcome; "success"/"failure"."""

    def counted() -> tuple[float, float]:
        text = metrics(stack, daemon)
        return (
            metric(text, "nullmx_config_reloads_total", result="success"),
            metric(text, "nullmx_config_reloads_total", result="failure"),
        )

    before = counted()
    daemon.config_path.write_text(
        toml_config([nameserver], daemon.libmilter_socket, daemon.metrics_port, "", options)
    )
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGUSR1)
    wait_until(lambda: counted() != before, 10.0)
    return "success" if counted()[0] > before[0] else "failure"


def test_dnssec_settings_reload(dnssec_stack: DnssecStack, start_milter: StartMilter) -> None:
    daemon = start_milter(VALIDATING, "off")
    assert rcpt_replies(dnssec_stack, daemon, ["a@null.insecure.test"]) == [NULL_556]
    assert probe_state(dnssec_stack, daemon) == "off"

    assert reload(dnssec_stack, daemon, VALIDATING, dns_options("require")) == "success"
    wait_for_probe(dnssec_stack, daemon, "validating")
    after = rcpt_replies(dnssec_stack, daemon, ["b@null.insecure.test", "c@null.signed.test"])
    assert after == ["continue", NULL_556]

    # A resolver that does not validate: the probe asks again at once after the reload.
    assert reload(dnssec_stack, daemon, PLAIN, dns_options("require")) == "success"
    wait_for_probe(dnssec_stack, daemon, "not_validating")
    assert http_get(dnssec_stack, daemon, "/healthz")[0] == 503

    # A remote resolver without the opt-in is refused; the running config stays in force.
    assert reload(dnssec_stack, daemon, "192.0.2.53", dns_options("require")) == "failure"
    status = http_get(dnssec_stack, daemon, "/status")[1]
    assert "dns.nameservers" in status
    assert "must be a loopback address" in daemon.log()
    assert rcpt_replies(dnssec_stack, daemon, ["d@null.signed.test"]) == ["continue"]
