"""A private Postfix instance (`postfix -c DIR`) inside a network namespace, and smtp-sink.

Reusable outside the test suite (the demo and the benchmarks use it): PostfixInstance takes
extra main.cf and master.cf lines, so a caller adds milters, restrictions or more listeners.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from netns import FQDN, Namespace, NetNamespace

REPO = Path(__file__).resolve().parent.parent
# The shipped wiring (docs/postfix.md): the tests apply this very file, verbatim.
SHIPPED_MAIN_CF = REPO / "config" / "postfix" / "main.cf"
# The unix socket the shipped main.cf names, relative to the queue directory: Postfix daemons
# run there, so the same path works with smtpd chrooted or not (master.cf.notes).
UNIX_SOCKET = "nullmx-milter/nullmx-milter.sock"

# The services a relay needs, unchrooted (listener() may chroot an smtpd).
_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def listener(port: int, *options: str, chroot: bool = False) -> str:
    """A master.cf smtpd line on 127.0.0.1:PORT with `-o name=value` overrides."""
    lines = [f"127.0.0.1:{port} inet n - {'y' if chroot else 'n'} - - smtpd"]
    lines += [f"  -o {option}" for option in options]
    return "\n".join(lines) + "\n"


# Files a chrooted smtpd needs to resolve names, as Debian's init script copies them.
_CHROOT_ETC = ("resolv.conf", "hosts", "nsswitch.conf", "services", "host.conf", "localtime")


def shipped_main_cf() -> str:
    """config/postfix/main.cf, whose smtpd_milters is the unix socket UNIX_SOCKET."""
    text = SHIPPED_MAIN_CF.read_text()
    if f"\nsmtpd_milters = unix:{UNIX_SOCKET}\n" not in text:
        raise ValueError(f"{SHIPPED_MAIN_CF} no longer names unix:{UNIX_SOCKET}")
    return text


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:PORT in the namespace; dumps every message to a file.

    Each message goes to its own file in `dumps`, whose header records the envelope, so the
    recipients the sink accepted can be read back.
    """

    def __init__(self, netns: Namespace, workdir: Path, port: int = 2525) -> None:
        self.netns = netns
        self.port = port
        self.workdir = workdir
        self.dumps = workdir / "dumps"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SmtpSink:
        self.dumps.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dumps, "postfix")
        self.process = subprocess.Popen(
            [
                *self.netns.prefix,
                "smtp-sink",
                "-u",
                "postfix",
                "-d",
                f"{self.dumps}/message.",
                f"127.0.0.1:{self.port}",
                "256",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "sink.log").open("wb"),
        )
        with self.netns.entered():
            wait_for_smtp(self.port)
        return self

    def _envelope(self, header: str) -> list[str]:
        found: list[str] = []
        for dump in sorted(self.dumps.iterdir(), key=lambda path: path.stat().st_mtime_ns):
            text = dump.read_text(errors="replace")
            found += re.findall(rf"^{header}: <([^>]*)>", text, re.MULTILINE)
        return found

    def recipients(self) -> list[str]:
        """Every envelope recipient the sink accepted so far, in order."""
        return self._envelope("X-Rcpt-Args")

    def senders(self) -> list[str]:
        """Every envelope sender so far, "<>" for bounces."""
        return [sender or "<>" for sender in self._envelope("X-Mail-Args")]

    def wait_for_recipients(
        self, done: Callable[[list[str]], bool], timeout: float = 20.0
    ) -> list[str]:
        """Poll the dumps until `done(recipients)`; returns what was there at the end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.recipients()
            if done(got):
                return got
            time.sleep(0.05)
        return self.recipients()

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_smtp(port: int, timeout: float = 15.0) -> None:
    """Poll until 127.0.0.1:PORT (in the caller's namespace) gives an SMTP greeting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                if conn.recv(512).startswith(b"220"):
                    conn.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"no SMTP greeting on 127.0.0.1:{port} after {timeout}s")


class PostfixInstance:
    """Postfix with its own config dir, queue and maillog, relaying everything to `next_hop`.

    smtpd listens on 127.0.0.1:`port` in `netns`. `main_cf` lines are appended to the base
    main.cf (later settings win); `master_cf` lines are appended to master.cf (see listener()
    for more smtpd listeners). The queue directory holds the etc files a chrooted smtpd needs,
    as Debian's init script copies them, so listeners may run chrooted as Debian ships them.
    """

    def __init__(
        self,
        netns: NetNamespace,
        workdir: Path,
        next_hop: int,
        port: int = 25,
        main_cf: str = "",
        master_cf: str = "",
    ) -> None:
        self.netns = netns
        self.workdir = workdir
        self.config_dir = workdir / "etc"
        self.queue_dir = workdir / "spool"
        self.maillog = workdir / "maillog"
        self.next_hop = next_hop
        self.port = port
        self.main_cf = main_cf
        self.master_cf = master_cf
        self.started = False

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        shutil.chown(self.workdir / "data", "postfix")
        self.maillog.touch()
        shutil.chown(self.maillog, "postfix")
        (self.config_dir / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {self.workdir / "data"}
myhostname = {FQDN}
mydomain = nullmx.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{self.next_hop}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
maillog_file = {self.maillog}
maillog_file_prefixes = {self.workdir}
smtputf8_enable = yes
smtp_dns_support_level = disabled
biff = no
default_process_limit = 20
{self.main_cf}
"""
        )
        (self.config_dir / "master.cf").write_text(
            listener(self.port) + _MASTER_CF + self.master_cf
        )
        etc = self.queue_dir / "etc"
        etc.mkdir(exist_ok=True)
        for name in _CHROOT_ETC:
            source = self.netns.etc / name
            source = source if source.exists() else Path("/etc") / name
            if source.exists():
                shutil.copy(source, etc / name)

    def postfix(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """`postfix -c DIR ...` inside the namespace; `script` makes it print its errors."""
        command = " ".join(["postfix", "-c", str(self.config_dir), *arguments])
        return self.netns.run(["script", "-qec", command, "/dev/null"])

    def start(self) -> PostfixInstance:
        self._write_config()
        check = self.postfix("check")
        if check.returncode != 0:
            raise RuntimeError(f"postfix check failed: {check.stdout}{check.stderr}")
        started = self.postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stdout}{self.log()}")
        self.started = True
        with self.netns.entered():
            wait_for_smtp(self.port)
        return self

    def milter_socket(self) -> Path:
        """Where the shipped main.cf expects the milter's socket, its folder made as Debian's
        package makes it: setgid, group postfix, so the socket is postfix's to use."""
        path = self.queue_dir / UNIX_SOCKET
        path.parent.mkdir(exist_ok=True)
        shutil.chown(path.parent, "root", "postfix")
        path.parent.chmod(0o2750)
        return path

    def log(self) -> str:
        return self.maillog.read_text(errors="replace")

    def sendmail(
        self, sender: str, recipients: list[str], message: str
    ) -> subprocess.CompletedProcess[str]:
        """Submit with Postfix's `sendmail` command (the non-SMTP path)."""
        return self.netns.run(
            ["sendmail", "-C", str(self.config_dir), "-f", sender, "-i", "--", *recipients],
            stdin=message,
        )

    def queue(self) -> str:
        """`postqueue -p`: what is still queued (deferred mail, bounces)."""
        return self.netns.run(["postqueue", "-c", str(self.config_dir), "-p"]).stdout

    def flush(self) -> None:
        self.netns.run(["postqueue", "-c", str(self.config_dir), "-f"])

    def stop(self, timeout: float = 30.0) -> None:
        """`postfix stop` (it signals this instance's master, by its pid file), if it runs,
        then wait for the master to exit: `postfix stop` returns before it has, and a
        module that starts the next instance on the same port would race it."""
        pid_file = self.queue_dir / "pid" / "master.pid"
        if self.started or pid_file.exists():
            master = _read_pid(pid_file)
            self.postfix("stop")
            deadline = time.monotonic() + timeout
            while master is not None and Path(f"/proc/{master}").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postfix master {master} still running {timeout} s after stop"
                    )
                time.sleep(0.05)
        self.started = False


def _read_pid(pid_file: Path) -> int | None:
    """The pid Postfix wrote (right-aligned, newline-terminated), or None."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
