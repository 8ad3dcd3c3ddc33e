"""What every real-MTA test needs: a network namespace with DNS, milters and smtp-sink.

Inside a private namespace (resolv.conf -> 127.0.0.1): Knot on 127.0.0.1:53 serving the test
zones (so Postfix and Sendmail resolve through it like through any resolver), or with
`dnssec` a validating unbound there in front of a signing Knot (dnssec_stack), the installed
milter daemon (as many as a test wants, TCP or unix socket), and smtp-sink as the next hop.
"""

from __future__ import annotations

import contextlib
import shutil
import smtplib
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from daemon_process import MilterDaemon, reap
from dnssec_stack import DnssecServers
from knot import KnotServer
from mta_postfix import SmtpSink
from netns import NetNamespace

NAMESERVER = "127.0.0.1:53"
SINK_PORT = 2525


class MtaStack:
    """The namespace and the servers in it; stop() tears everything down, even half-started.

    Everything lives in a fresh folder below /tmp that the MTAs' own users (postfix) can
    traverse, unlike pytest's private tmp_path; stop() removes it.
    """

    def __init__(self, label: str, dnssec: bool = False) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"nullmx-{label}-"))
        self.workdir.chmod(0o755)
        self.netns = NetNamespace(label)
        self.knot = KnotServer(self.workdir / "knot", port=53, command_prefix=self.netns.prefix)
        self.dnssec = DnssecServers(self.netns, self.workdir / "dnssec") if dnssec else None
        self.sink = SmtpSink(self.netns, self.workdir / "sink", port=SINK_PORT)
        self.milters: list[MilterDaemon] = []

    def start(self) -> MtaStack:
        try:
            self.netns.create()
            if self.dnssec is not None:
                self.dnssec.start()
            else:
                (self.workdir / "knot").mkdir(parents=True, exist_ok=True)
                with self.netns.entered():
                    self.knot.start()
            self.sink.start()
        except BaseException:
            self.stop()
            raise
        return self

    def folder(self, name: str) -> Path:
        """A new folder in the stack's (postfix-traversable) work folder."""
        path = self.workdir / name
        path.mkdir(mode=0o755)
        return path

    def run_folder(self) -> Path:
        """A folder below /run: Sendmail refuses sockets under world-writable /tmp."""
        path = Path("/run") / self.netns.name
        path.mkdir(mode=0o755, exist_ok=True)
        return path

    def milter(
        self,
        extra_config: str = "",
        unix_socket: Path | None = None,
        start: bool = True,
        dns_options: str = "timeout = 1.0\n",
    ) -> MilterDaemon:
        """A milter daemon in the namespace using the namespace's resolver on port 53 (Knot,
        or the validating unbound), started unless told; `dns_options` as toml_config's."""
        workdir = self.workdir / f"milter{len(self.milters)}"
        workdir.mkdir(parents=True)
        daemon = MilterDaemon(
            workdir,
            [NAMESERVER],
            extra_config,
            unix_socket=unix_socket,
            command_prefix=self.netns.prefix,
            dns_options=dns_options,
        )
        self.milters.append(daemon)
        if start:
            self.start_milter(daemon)
        return daemon

    def start_milter(self, daemon: MilterDaemon) -> MilterDaemon:
        with self.netns.entered():
            return daemon.start()

    def metrics_text(self, daemon: MilterDaemon) -> str:
        with self.netns.entered():
            return daemon.metrics_text()

    def smtp(self, port: int, timeout: float = 30.0) -> smtplib.SMTP:
        """An SMTP client connected to 127.0.0.1:PORT inside the namespace."""
        with self.netns.entered():
            return smtplib.SMTP(
                "127.0.0.1", port, local_hostname="client.real.test", timeout=timeout
            )

    def stop(self) -> None:
        # SIGTERM to all first: each takes seconds to exit, so let them do it together.
        reap([daemon.terminate() for daemon in self.milters])
        self.sink.stop()
        self.knot.stop()
        if self.dnssec is not None:
            self.dnssec.stop()
        with contextlib.suppress(OSError):
            self.netns.delete()
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(Path("/run") / self.netns.name, ignore_errors=True)


def tagged(tag: str, addresses: list[str]) -> list[str]:
    """Addresses with a per-test prefix on the local part, so sink output can be told apart."""
    return [f"{tag}-{address}" for address in addresses]


# Deliverable: a real MX, and an A record only (RFC 5321 implicit MX).
DELIVERABLE = ["real@real.test", "aonly@implicit.test"]
# Null MX: direct, through a CNAME, and an IDN domain in A-label form.
NULL_MX = ["null@null.test", "cname@cname-null.test", "idn@xn--bcher-kva.test"]


@dataclass
class Transaction:
    """The replies of one SMTP transaction, as the client saw them on the wire."""

    mail: list[str]
    rcpt: dict[str, list[str]]
    data: list[str]


def reply_lines(code: int, text: bytes) -> list[str]:
    """smtplib's (code, text) back into the wire lines (it strips 'NNN-' from each line)."""
    parts = text.decode("utf-8", "replace").split("\n")
    return [
        f"{code}{' ' if index == len(parts) - 1 else '-'}{part}" for index, part in enumerate(parts)
    ]


def send_transaction(
    client: smtplib.SMTP, sender: str, recipients: list[str], smtputf8: bool = False
) -> Transaction:
    """MAIL, one RCPT per recipient, and DATA if any recipient was accepted."""
    client.ehlo_or_helo_if_needed()
    mail = reply_lines(*client.mail(sender, ["SMTPUTF8"] if smtputf8 else []))
    rcpt = {recipient: reply_lines(*client.rcpt(recipient)) for recipient in recipients}
    data: list[str] = []
    if any(lines[-1].startswith("250") for lines in rcpt.values()):
        message = f"From: <{sender}>\r\nSubject: nullmx-milter test\r\n\r\nHello.\r\n"
        data = reply_lines(*client.data(message.encode()))
    else:
        client.rset()
    return Transaction(mail, rcpt, data)


def median_message_seconds(
    client: smtplib.SMTP, sender: str, recipient: str, count: int = 30
) -> float:
    """Median wall time of MAIL + RCPT + DATA for `count` messages in one SMTP session."""
    client.ehlo_or_helo_if_needed()
    seconds: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        client.mail(sender)
        client.rcpt(recipient)
        code, text = client.data(b"Subject: latency\r\n\r\nHello.\r\n")
        seconds.append(time.perf_counter() - start)
        if code != 250:
            raise AssertionError(f"message not accepted: {code} {text!r}")
    return statistics.median(seconds)
