"""The policy service behind a real Exim 4.96, wired with the shipped config/exim/ files."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon_process import MilterDaemon
from exposition import metric
from milter_client import MilterClient
from mta_exim import EXIM_USER, EximInstance, HostCheck, assert_rewrapped, documented_defer
from mta_stack import DELIVERABLE, NULL_MX, MtaStack, send_transaction, tagged

pytestmark = pytest.mark.mta

SENDER = "sender@real.test"
NULL_SENDER = "someone@nullsender.test"
EXIM_PORT = 2526
# NXDOMAIN is not the null-MX check's business: accepted, as by the milter.
NXDOMAIN = "nx@nx.test"
IDN_U_LABEL = "utf8@bücher.test"
SERVFAIL = "sf@x.broken.test"


@dataclass
class EximSetup:
    stack: MtaStack
    sockets: Path
    # on_dns_error = "tempfail", sender_null_mx = "reject"
    enforce: MilterDaemon
    dry_run: MilterDaemon

    def exim(
        self,
        name: str,
        macros: dict[str, str],
        check_senders: bool = False,
        layout: str = "relay",
    ) -> EximInstance:
        return EximInstance(
            self.stack.netns,
            self.stack.folder(f"exim-{name}"),
            macros,
            next_hop=self.stack.sink.port,
            port=EXIM_PORT,
            check_senders=check_senders,
            layout=layout,
        )

    def enforcing_exim(
        self, name: str, check_senders: bool = False, layout: str = "relay"
    ) -> EximInstance:
        socket_path = str(self.sockets / "enforce.sock")
        return self.exim(name, {"NULLMX_SOCKET": socket_path}, check_senders, layout)

    def milter_reply(self, sender: str, recipient: str = "") -> list[str]:
        """The reply the milter sends for this MAIL (and RCPT), '%' as the MTA shows it."""
        with self.stack.netns.entered(), MilterClient(self.enforce.milter_port) as client:
            answer = client.mail(f"<{sender}>")
            if recipient:
                answer = client.rcpt(f"<{recipient}>")
        return [line.replace("%%", "%") for line in answer.lines()]

    def metrics(self) -> str:
        return self.stack.metrics_text(self.enforce)


@pytest.fixture(scope="module")
def exim_setup(mta_stack: MtaStack) -> Iterator[EximSetup]:
    # As docs/exim.md sets it up: a folder of group Debian-exim, setgid, so the
    # service's 0660 socket is Exim's to use and nobody else's.
    sockets = mta_stack.folder("exim-sockets")
    shutil.chown(sockets, "root", EXIM_USER)
    sockets.chmod(0o2750)
    enforce = mta_stack.milter(
        '[policy]\non_dns_error = "tempfail"\nsender_null_mx = "reject"\n'
        f'[policy_service]\nlisten = "unix:{sockets / "enforce.sock"}"\n'
    )
    dry_run = mta_stack.milter(
        f'[policy]\nmode = "dry-run"\n[policy_service]\nlisten = "unix:{sockets / "dry.sock"}"\n'
    )
    yield EximSetup(mta_stack, sockets, enforce, dry_run)


def session(
    exim: EximInstance, recipients: list[str], sender: str = SENDER, utf8: bool = False
) -> tuple[HostCheck, list[str], dict[str, list[str]]]:
    """EHLO, MAIL, one RCPT each, QUIT through `exim -bh`: (check, MAIL reply, RCPT replies)."""
    mail = f"MAIL FROM:<{sender}>" + (" SMTPUTF8" if utf8 else "")
    commands = ["EHLO client.real.test", mail, *(f"RCPT TO:<{r}>" for r in recipients), "QUIT"]
    check = exim.host_check(commands)
    # banner, EHLO, MAIL, the RCPTs, QUIT
    assert len(check.replies) == 4 + len(recipients), check.replies
    rcpt = dict(zip(recipients, check.replies[3:-1], strict=True))
    return check, check.replies[2], rcpt


def frontend_replies(text: str, code: str, enhanced: str) -> float:
    return metric(
        text, "nullmx_frontend_replies_total", frontend="exim", code=code, enhanced=enhanced
    )


def test_null_mx_recipients_get_the_milters_multiline_556(exim_setup: EximSetup) -> None:
    exim = exim_setup.enforcing_exim("rcpt", check_senders=True)
    accepted = [*DELIVERABLE, NXDOMAIN]
    null_mx = [*NULL_MX, IDN_U_LABEL]
    before = exim_setup.metrics()
    check, mail, rcpt = session(exim, [*accepted, *null_mx], utf8=True)
    after = exim_setup.metrics()

    assert mail == ["250 OK"]
    for recipient in accepted:
        assert rcpt[recipient] == ["250 Accepted"], recipient
    for recipient in null_mx:
        assert_rewrapped(rcpt[recipient], exim_setup.milter_reply(SENDER, recipient))
    # What docs/exim.md shows.
    assert rcpt["null@null.test"] == [
        "556-5.1.10 <null@null.test>: Recipient address rejected:",
        "556-5.1.10 null.test does not accept mail",
        "556-5.1.10 null.test publishes a null MX record (RFC 7505):",
        "556-5.1.10 it has declared that it receives no email",
        "556 5.1.10 Check the address for a typo, or reach the recipient another way",
    ]
    # Exim logs the first line of each rejection.
    rejected = [line for line in check.log.splitlines() if "rejected RCPT" in line]
    assert len(rejected) == len(null_mx), rejected
    assert all("nullmx-milter: 556 5.1.10 <" in line for line in rejected), rejected
    added = frontend_replies(after, "556", "5.1.10") - frontend_replies(before, "556", "5.1.10")
    assert added == len(null_mx)


@pytest.mark.parametrize("layout", ["debian-split", "debian-single"])
def test_debians_own_configurations_with_the_shipped_files(
    exim_setup: EximSetup, layout: str
) -> None:
    recipients = [*DELIVERABLE, *NULL_MX]
    _check, _mail, rcpt = session(exim_setup.enforcing_exim(layout, layout=layout), recipients)
    for recipient in DELIVERABLE:
        # Debian's acl_check_rcpt accepts the relay_from_hosts (here 127.0.0.1).
        assert rcpt[recipient] == ["250 Accepted"], recipient
    for recipient in NULL_MX:
        assert_rewrapped(rcpt[recipient], exim_setup.milter_reply(SENDER, recipient))


def test_dns_failure_defers_with_451_4_4_3(exim_setup: EximSetup) -> None:
    _check, _mail, rcpt = session(exim_setup.enforcing_exim("servfail"), [SERVFAIL])
    assert_rewrapped(rcpt[SERVFAIL], exim_setup.milter_reply(SENDER, SERVFAIL))
    assert rcpt[SERVFAIL][0].startswith(f"451-4.4.3 <{SERVFAIL}>: DNS lookup")


def test_sender_check_at_mail(exim_setup: EximSetup) -> None:
    exim = exim_setup.enforcing_exim("mail", check_senders=True)
    check = exim.host_check(["EHLO client.real.test", f"MAIL FROM:<{NULL_SENDER}>", "QUIT"])
    assert_rewrapped(check.replies[2], exim_setup.milter_reply(NULL_SENDER))
    assert check.replies[2][0] == f"550-5.7.27 <{NULL_SENDER}>: Sender address rejected:"
    # The null reverse path is never a null-MX sender.
    _check, mail, rcpt = session(exim, [DELIVERABLE[0]], sender="")
    assert mail == ["250 OK"]
    assert rcpt[DELIVERABLE[0]] == ["250 Accepted"]


def test_dry_run_accepts_and_exim_logs(exim_setup: EximSetup) -> None:
    exim = exim_setup.exim("dry", {"NULLMX_SOCKET": str(exim_setup.sockets / "dry.sock")})
    check, _mail, rcpt = session(exim, NULL_MX[:1])
    assert rcpt[NULL_MX[0]] == ["250 Accepted"]
    logged = "LOG: H=(client.real.test) [127.0.0.1] Warning: nullmx-milter dry-run: "
    assert f"{logged}null.test publishes a null MX record" in check.log.splitlines()


def test_attacker_text_cannot_expand_or_split_lines(exim_setup: EximSetup) -> None:
    # Expansion syntax, a backslash escape and a TAB inside a quoted local part: the reply
    # quotes the address, and the answer passes through Exim's ACL as a variable.
    recipient = '"${run{/bin/false}}\\\\t\tx"@null.test'
    _check, _mail, rcpt = session(exim_setup.enforcing_exim("hostile"), [recipient])
    lines = rcpt[recipient]
    assert lines[0] == '556-5.1.10 <"${run{/bin/false}}\\\\t?x"@null.test>:', lines
    assert_rewrapped(lines, exim_setup.milter_reply(SENDER, recipient))


def test_daemon_relays_to_the_deliverable_recipients_only(exim_setup: EximSetup) -> None:
    exim = exim_setup.enforcing_exim("daemon").start()
    try:
        deliverable = tagged("exim", DELIVERABLE)
        null_mx = tagged("exim", NULL_MX)
        with exim_setup.stack.smtp(EXIM_PORT) as client:
            result = send_transaction(client, SENDER, [*deliverable, *null_mx])
        for recipient in deliverable:
            assert result.rcpt[recipient] == ["250 Accepted"], recipient
        for recipient in null_mx:
            assert_rewrapped(result.rcpt[recipient], exim_setup.milter_reply(SENDER, recipient))
        assert result.data[0].startswith("250 OK id="), result.data
        delivered = exim_setup.stack.sink.wait_for_recipients(
            lambda got: set(deliverable) <= set(got)
        )
        assert sorted(r for r in delivered if r.startswith("exim-")) == sorted(deliverable), (
            exim.main_log()
        )
        assert (
            "rejected RCPT <exim-null@null.test>: nullmx-milter: 556 5.1.10" in exim.main_log()
        ), exim.main_log()
    finally:
        exim.stop()


@pytest.fixture(scope="module")
def unavailable(exim_setup: EximSetup) -> Iterator[dict[str, Path]]:
    """Sockets of a policy service that is not there, by how it is not there."""
    sockets = exim_setup.sockets
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent,
    ):
        # What a killed service leaves behind: a socket file nothing listens on.
        stale.bind(str(sockets / "stale.sock"))
        # A hung service: connections wait in the backlog, nothing ever answers.
        silent.bind(str(sockets / "silent.sock"))
        silent.listen(16)
        for name in ("stale.sock", "silent.sock"):
            (sockets / name).chmod(0o660)
        # What a stopped service leaves: no socket file at all.
        yield {
            "missing": sockets / "nobody.sock",
            "stale": sockets / "stale.sock",
            "silent": sockets / "silent.sock",
        }


@pytest.mark.parametrize(
    "defer", [pytest.param(False, id="fail-open"), pytest.param(True, id="defer")]
)
@pytest.mark.parametrize("kind", ["missing", "stale", "silent"])
def test_service_down_or_slow_never_rejects(
    exim_setup: EximSetup, unavailable: dict[str, Path], kind: str, defer: bool
) -> None:
    macros = {"NULLMX_SOCKET": str(unavailable[kind]), "NULLMX_TIMEOUT": "1s"}
    if defer:
        name, _, value = documented_defer().partition(" = ")
        macros[name] = value
    recipients = [NULL_MX[0], DELIVERABLE[0]]
    _check, _mail, rcpt = session(exim_setup.exim(f"{kind}-{defer}", macros), recipients)
    expected = (
        ["451 4.3.0 Recipient check unavailable, try again later"] if defer else ["250 Accepted"]
    )
    for recipient in recipients:
        assert rcpt[recipient] == expected, rcpt
