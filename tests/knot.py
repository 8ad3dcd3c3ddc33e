"""A real Knot DNS server on 127.0.0.1 serving the test zones, for integration tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

ZONES = Path(__file__).parent / "zones"
# Declared but without a zone file: Knot answers SERVFAIL for the whole subtree.
BROKEN_ZONE = "broken.test."


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port that was free a moment ago on 127.0.0.1 (for both UDP and TCP)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, other) as second:
                try:
                    second.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class KnotServer:
    """knotd in the foreground with a private config, database and zone copies.

    `command_prefix` runs knotd inside something (`ip netns exec NS`); readiness is then
    polled from the caller's namespace, so start it from inside the same one.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        address: str = "127.0.0.1",
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.address = address
        self.port = port or free_port()
        self.command_prefix = list(command_prefix)
        self.process: subprocess.Popen[bytes] | None = None
        self.zone_dir = workdir / "zones"

    @property
    def nameserver(self) -> str:
        """The entry for [dns] nameservers."""
        return f"{self.address}:{self.port}"

    def _write_config(self, extra_zones: dict[str, str], signed: Sequence[str]) -> Path:
        self.zone_dir.mkdir(parents=True, exist_ok=True)
        # The key database lives below it; Knot cannot sign until it exists.
        (self.workdir / "db").mkdir(parents=True, exist_ok=True)
        zones = {"test.": "test.zone", "example.": "example.zone", "gmial.com.": "gmial.com.zone"}
        for zone_file in zones.values():
            shutil.copy(ZONES / zone_file, self.zone_dir / zone_file)
        for origin, text in extra_zones.items():
            (self.zone_dir / f"{origin}zone").write_text(text)
            zones[origin] = f"{origin}zone"
        zones[BROKEN_ZONE] = "missing.zone"
        signing = "\n    dnssec-signing: on\n    dnssec-policy: signed"
        zone_lines = "\n".join(
            f"  - domain: {origin}\n    file: {name}" + signing * (origin in signed)
            for origin, name in zones.items()
        )
        config = self.workdir / "knot.conf"
        config.write_text(
            f"""server:
    listen: {self.address}@{self.port}
    rundir: {self.workdir}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: {self.workdir / "db"}
log:
  - target: stderr
    any: error
policy:
  - id: signed
    algorithm: ecdsap256sha256
    zsk-lifetime: 0
    ksk-lifetime: 0
template:
  - id: default
    storage: {self.zone_dir}
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
{zone_lines}
"""
        )
        return config

    def start(
        self, extra_zones: dict[str, str] | None = None, signed: Sequence[str] = ()
    ) -> KnotServer:
        """Serve the test zones and `extra_zones` (origin -> text); sign the origins in
        `signed` (ECDSA P-256, keys that never roll) and wait until they are signed."""
        config = self._write_config(extra_zones or {}, signed)
        self.process = subprocess.Popen(
            [*self.command_prefix, "knotd", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "knotd.log").open("wb"),
        )
        # One background worker loads the zones in turn: signing a big one delays the others.
        self.wait_ready(60.0 if signed else 10.0)
        for origin in signed:
            self.wait_signed(origin)
        return self

    def wait_signed(self, origin: str, timeout: float = 60.0) -> None:
        """Signing runs after the zone loads: wait for its DNSKEY set."""
        deadline = time.monotonic() + timeout
        query = dns.message.make_query(origin, dns.rdatatype.DNSKEY, want_dnssec=True)
        while time.monotonic() < deadline:
            try:
                if dns.query.udp(query, self.address, port=self.port, timeout=0.5).answer:
                    return
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"knotd did not sign {origin} in time")

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        query = dns.message.make_query("null.test.", dns.rdatatype.MX)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.workdir / "knotd.log").read_text()
                raise RuntimeError(f"knotd exited: {log}")
            try:
                dns.query.udp(query, self.address, port=self.port, timeout=0.2)
                return
            except (OSError, dns.exception.Timeout):
                time.sleep(0.02)
        raise RuntimeError("knotd did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class BlackHole:
    """A UDP and TCP socket on 127.0.0.1 that accepts queries and never answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", self.port))
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.bind(("127.0.0.1", self.port))
        self._tcp.listen(16)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._udp.close()
        self._tcp.close()
