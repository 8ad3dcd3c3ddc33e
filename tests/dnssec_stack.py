"""A signing Knot behind a real validating unbound, in a private network namespace.

Knot signs signed.test and signed2.test at start (ECDSA P-256, keys that never roll) and
serves insecure.test and bogus.test unsigned (all four in tests/zones/dnssec), beside the
usual test zones. Two unbound instances resolve through stub zones to Knot: VALIDATING
(127.0.0.1:53, also the namespace's resolv.conf resolver) holds the signed zones' DS records
from `keymgr` as trust anchors, declares insecure.test insecure and holds a DS that matches
nothing for bogus.test (so it answers SERVFAIL there); PLAIN (127.0.0.1:5301) has no anchor
and validates nothing. unbound must stay inside the namespace: anywhere else it would prime
the root over the network.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from knot import KnotServer
from mta_postfix import stop_process
from netns import NetNamespace

ZONES = Path(__file__).parent / "zones" / "dnssec"
SIGNED_ZONES = ("signed.test.", "signed2.test.")
UNSIGNED_ZONES = ("insecure.test.", "bogus.test.")
INSECURE_ZONE = "insecure.test."
BOGUS_ZONE = "bogus.test."
KNOT_PORT = 5300
VALIDATING_PORT = 53
PLAIN_PORT = 5301
VALIDATING = f"127.0.0.1:{VALIDATING_PORT}"
PLAIN = f"127.0.0.1:{PLAIN_PORT}"
KNOT = f"127.0.0.1:{KNOT_PORT}"
# A probe query every resolver in the stack can answer: through VALIDATING it comes with AD.
PROBE = "soa:signed.test."


def _wait_for_dns(address: str, port: int, name: str, timeout: float = 15.0) -> None:
    """Poll (from the caller's namespace) until address:port answers a query for `name`."""
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(name, dns.rdatatype.SOA)
    while time.monotonic() < deadline:
        try:
            answer = dns.query.udp(query, address, port=port, timeout=0.5)
            if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                return
        except (OSError, dns.exception.DNSException):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{address}:{port} did not answer {name} SOA after {timeout}s")


def ds_records(knot: KnotServer, origin: str) -> list[str]:
    """A signed zone's DS records (`keymgr ZONE ds`), as trust-anchor lines."""
    done = subprocess.run(
        ["keymgr", "-c", str(knot.workdir / "knot.conf"), origin, "ds"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line.strip() for line in done.stdout.splitlines() if " DS " in line]
    if not lines:
        raise RuntimeError(f"keymgr printed no DS for {origin}: {done.stdout}{done.stderr}")
    return lines


class Unbound:
    """Debian's unbound in the foreground, resolving the test zones through stubs to Knot."""

    def __init__(
        self, netns: NetNamespace, workdir: Path, port: int, anchors: list[str] | None
    ) -> None:
        self.netns = netns
        self.workdir = workdir
        self.port = port
        self.anchors = anchors
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        validation = ""
        if self.anchors is not None:
            anchor_file = self.workdir / "anchors"
            anchor_file.write_text("".join(f"{line}\n" for line in self.anchors))
            validation = (
                f'    trust-anchor-file: "{anchor_file}"\n'
                f'    domain-insecure: "{INSECURE_ZONE}"\n'
                '    module-config: "validator iterator"\n'
            )
        else:
            validation = '    module-config: "iterator"\n'
        stubs = "".join(
            f'stub-zone:\n    name: "{origin}"\n    stub-addr: 127.0.0.1@{KNOT_PORT}\n'
            for origin in SIGNED_ZONES + UNSIGNED_ZONES
        )
        config = self.workdir / "unbound.conf"
        config.write_text(
            f"""server:
    interface: 127.0.0.1
    port: {self.port}
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{self.workdir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    do-not-query-localhost: no
    local-zone: "test." nodefault
    qname-minimisation: no
{validation}remote-control:
    control-enable: no
{stubs}"""
        )
        return config

    def start(self) -> None:
        config = self._write_config()
        check = subprocess.run(
            ["unbound-checkconf", str(config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {check.stdout}{check.stderr}")
        self.process = subprocess.Popen(
            [*self.netns.prefix, "unbound", "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "unbound.log").open("wb"),
        )
        with self.netns.entered():
            _wait_for_dns("127.0.0.1", self.port, SIGNED_ZONES[0])

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def bogus_anchor(ds_line: str) -> str:
    """A DS line for BOGUS_ZONE that matches no key: a signed zone's DS, relabelled."""
    return f"{BOGUS_ZONE} " + ds_line.split(None, 1)[1]


class DnssecServers:
    """The signing Knot and both unbounds in `netns`; stop() undoes even a half start."""

    def __init__(self, netns: NetNamespace, workdir: Path) -> None:
        self.netns = netns
        self.workdir = workdir
        self.knot = KnotServer(workdir / "knot", port=KNOT_PORT, command_prefix=netns.prefix)
        self.validating: Unbound | None = None
        self.plain: Unbound | None = None

    def start(self) -> DnssecServers:
        try:
            self.knot.workdir.mkdir(parents=True)
            zones = {
                origin: (ZONES / f"{origin}zone").read_text()
                for origin in SIGNED_ZONES + UNSIGNED_ZONES
            }
            with self.netns.entered():
                self.knot.start(extra_zones=zones, signed=SIGNED_ZONES)
            anchors = [line for origin in SIGNED_ZONES for line in ds_records(self.knot, origin)]
            anchors.append(bogus_anchor(anchors[0]))
            self.validating = Unbound(
                self.netns, self.workdir / "unbound", VALIDATING_PORT, anchors
            )
            self.validating.start()
            self.plain = Unbound(self.netns, self.workdir / "unbound-plain", PLAIN_PORT, None)
            self.plain.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.plain, self.validating):
            if server is not None:
                server.stop()
        self.knot.stop()


class DnssecStack:
    """A namespace of its own with DnssecServers in it, for lookup and daemon tests."""

    def __init__(self, label: str = "dnssec") -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"nullmx-{label}-"))
        self.workdir.chmod(0o755)
        self.netns = NetNamespace(label)
        self.servers = DnssecServers(self.netns, self.workdir)

    def start(self) -> DnssecStack:
        try:
            self.netns.create()
            self.servers.start()
        except BaseException:
            self.stop()
            raise
        return self

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The body runs inside the namespace (its DNS sockets too)."""
        with self.netns.entered():
            yield

    def stop(self) -> None:
        self.servers.stop()
        with contextlib.suppress(OSError):
            self.netns.delete()
        shutil.rmtree(self.workdir, ignore_errors=True)
