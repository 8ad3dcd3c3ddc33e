"""A private Sendmail (Debian's packages, unpacked, not installed) inside a network namespace.

Debian's sendmail packages conflict with postfix, so scripts/fetch-sendmail unpacks them into
.cache/sendmail; sendmail.cf is built with m4 from a test .mc that includes the shipped
config/sendmail/nullmx-milter.mc, and the daemon runs in the foreground (-bD) relaying all
mail to smtp-sink.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mta_postfix import stop_process, wait_for_smtp
from netns import NetNamespace

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "sendmail"
FETCH = REPO / "scripts" / "fetch-sendmail"
SENDMAIL = CACHE / "root" / "usr" / "libexec" / "sendmail" / "sendmail"
CF_DIR = CACHE / "root" / "usr" / "share" / "sendmail" / "cf"
# The shipped wiring (docs/sendmail.md): the tests include this very file.
SHIPPED_MC = REPO / "config" / "sendmail" / "nullmx-milter.mc"
SHIPPED_SOCKET = "S=unix:/run/nullmx-milter/nullmx-milter.sock"


def fetch_sendmail() -> Path:
    """Unpack Debian's sendmail into the cache (once); returns the binary."""
    if not SENDMAIL.exists():
        subprocess.run([str(FETCH), str(CACHE)], check=True, capture_output=True)
    return SENDMAIL


def shipped_mc(milter_socket: str) -> str:
    """config/sendmail/nullmx-milter.mc with the test's socket (libmilter syntax) in it."""
    text = SHIPPED_MC.read_text()
    if SHIPPED_SOCKET not in text:
        raise ValueError(f"{SHIPPED_MC} no longer names {SHIPPED_SOCKET}")
    return text.replace(SHIPPED_SOCKET, f"S={milter_socket}")


class SendmailInstance:
    """sendmail -bD with a private sendmail.cf, queue and pid file, relaying to `next_hop`.

    It listens on 127.0.0.1:`port` with the filters the .mc declares; `mc` holds extra .mc
    lines (more filters, more DAEMON_OPTIONS) placed after the shipped milter lines.
    """

    def __init__(
        self,
        netns: NetNamespace,
        workdir: Path,
        next_hop: int,
        milter_socket: str,
        port: int = 25,
        mc: str = "",
    ) -> None:
        self.netns = netns
        self.workdir = workdir
        self.queue_dir = workdir / "queue"
        self.next_hop = next_hop
        self.port = port
        self.milter_socket = milter_socket
        self.mc = mc
        self.cf = workdir / "sendmail.cf"
        self.process: subprocess.Popen[bytes] | None = None

    def _mc_text(self) -> str:
        work = self.workdir
        return f"""divert(-1)
divert(0)dnl
VERSIONID(`nullmx-milter tests')dnl
OSTYPE(`linux')dnl
define(`QUEUE_DIR', `{self.queue_dir}')dnl
define(`STATUS_FILE', `{work}/statistics')dnl
define(`HELP_FILE', `{work}/helpfile')dnl
define(`ALIAS_FILE', `{work}/aliases')dnl
define(`confCW_FILE', `{work}/local-host-names')dnl
define(`confPID_FILE', `{work}/sendmail.pid')dnl
define(`confHOST_STATUS_DIRECTORY', `')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDONT_BLAME_SENDMAIL', `GroupReadableKeyFile')dnl
define(`confTO_IDENT', `0s')dnl
define(`SMART_HOST', `[127.0.0.1]')dnl
define(`RELAY_MAILER_ARGS', `TCP $h {self.next_hop}')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h {self.next_hop}')dnl
FEATURE(`nocanonify')dnl
RELAY_DOMAIN(`127.0.0.1')dnl
DAEMON_OPTIONS(`Port={self.port}, Addr=127.0.0.1, Name=MTA')dnl
{shipped_mc(self.milter_socket)}{self.mc}MAILER(`local')dnl
MAILER(`smtp')dnl
"""

    def build_cf(self) -> None:
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        self.queue_dir.chmod(0o700)
        for name in ("statistics", "helpfile", "aliases", "local-host-names"):
            (self.workdir / name).touch()
        mc = self.workdir / "sendmail.mc"
        mc.write_text(self._mc_text())
        with self.cf.open("w") as out:
            subprocess.run(
                ["m4", f"-D_CF_DIR_={CF_DIR}/", str(CF_DIR / "m4" / "cf.m4"), str(mc)],
                stdout=out,
                check=True,
            )

    def start(self) -> SendmailInstance:
        binary = fetch_sendmail()
        self.build_cf()
        self.process = subprocess.Popen(
            [*self.netns.prefix, str(binary), "-bD", "-C", str(self.cf), "-q30m"],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "sendmail.stderr").open("wb"),
        )
        try:
            with self.netns.entered():
                wait_for_smtp(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"sendmail did not start: {self.stderr()}") from None
        return self

    def stderr(self) -> str:
        return (self.workdir / "sendmail.stderr").read_text(errors="replace")

    def queued(self) -> list[Path]:
        """Queue files (qf*) still in the queue: deferred mail or bounces."""
        return sorted(self.queue_dir.glob("qf*"))

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
