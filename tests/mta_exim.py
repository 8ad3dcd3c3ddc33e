"""A private Exim 4 (Debian's packages, unpacked, not installed) inside a network namespace.

Debian's exim4 packages conflict with postfix, so scripts/fetch-exim unpacks them into
.cache/exim. The shipped wiring of config/exim/ goes in verbatim, in one of three layouts:

- "relay": a configuration of the test's own that relays everything to smtp-sink, with
  conf.d/acl/25_nullmx-milter by `.include` right after `begin acl` (as docs/exim.md says
  for a single-file configuration), rcpt-acl.conf and mail-acl.conf as the
  first statements of the RCPT and MAIL ACLs;
- "debian-split": Debian's own conf.d, concatenated as update-exim4.conf does, with
  25_nullmx-milter dropped into acl/ and rcpt-acl.conf added to Debian's acl_check_rcpt;
- "debian-single": Debian's own exim4.conf.template with the `.include` and rcpt-acl.conf.

Settings go in as macros (the NULLMX_* ones the shipped ACL file documents), placed first as
/etc/exim4/exim4.conf.localmacros would be.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mta_postfix import stop_process, wait_for_smtp
from netns import NetNamespace

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "exim"
FETCH = REPO / "scripts" / "fetch-exim"
EXIM = CACHE / "root" / "usr" / "sbin" / "exim4"
EXIM_USER = "Debian-exim"
SHIPPED = REPO / "config" / "exim"
SHIPPED_ACL = SHIPPED / "conf.d" / "acl" / "25_nullmx-milter"
SHIPPED_RCPT = SHIPPED / "rcpt-acl.conf"
SHIPPED_MAIL = SHIPPED / "mail-acl.conf"
DEBIAN_CONFIG = CACHE / "root" / "etc" / "exim4"
# update-exim4.conf's order of the conf.d sections.
DEBIAN_SECTIONS = ("main", "acl", "router", "transport", "retry", "rewrite", "auth")
LAYOUTS = ("relay", "debian-split", "debian-single")
_DOCUMENTED_DEFER = re.compile(r"^#\s*(NULLMX_UNAVAILABLE = action=4.*)$", re.MULTILINE)
_REPLY_LINE = re.compile(r"[0-9]{3}[- ]")
_CONF_D_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")


def fetch_exim() -> Path:
    """Unpack Debian's exim4 into the cache (once) and make its user; returns the binary."""
    subprocess.run([str(FETCH), str(CACHE)], check=True, capture_output=True)
    return EXIM


def shipped_statement(path: Path, statement: str) -> str:
    """A shipped ACL addition, checked to still hold `statement`."""
    text = path.read_text()
    if f"\n  {statement}\n" not in text:
        raise ValueError(f"{path} no longer holds `{statement}`")
    return text


def documented_defer() -> str:
    """The NULLMX_UNAVAILABLE setting the shipped ACL file documents for deferring."""
    match = _DOCUMENTED_DEFER.search(SHIPPED_ACL.read_text())
    if match is None:
        raise ValueError(f"{SHIPPED_ACL} no longer documents a deferring NULLMX_UNAVAILABLE")
    return match.group(1)


def exim_folder(path: Path) -> Path:
    """A folder Exim writes to as its own user (spool, logs)."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, EXIM_USER, EXIM_USER)
    path.chmod(0o750)
    return path


def group_replies(output: str) -> list[list[str]]:
    """SMTP replies from `exim -bh` output: one list of wire lines per reply."""
    replies: list[list[str]] = []
    current: list[str] = []
    for line in output.splitlines():
        if not _REPLY_LINE.match(line):
            continue
        current.append(line)
        if line[3] == " ":
            replies.append(current)
            current = []
    return replies


@dataclass
class HostCheck:
    """One `exim -bh` session: the replies in order, and what Exim logged (stderr)."""

    replies: list[list[str]]
    log: str


class EximInstance:
    """Exim with a private configuration, spool and logs; `macros` are NULLMX_* settings,
    `check_senders` adds the shipped MAIL ACL statement.

    `host_check` runs an SMTP session through `exim -bh` (host-checking mode: the ACLs run,
    nothing is delivered); `start` runs `exim -bdf` listening on 127.0.0.1:`port` and
    relaying every accepted message to 127.0.0.1:`next_hop`.
    """

    def __init__(
        self,
        netns: NetNamespace,
        workdir: Path,
        macros: Mapping[str, str],
        next_hop: int,
        port: int = 25,
        check_senders: bool = False,
        layout: str = "relay",
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
        self.netns = netns
        self.workdir = workdir
        self.macros = dict(macros)
        self.next_hop = next_hop
        self.port = port
        self.check_senders = check_senders
        self.layout = layout
        self.config = workdir / "exim.conf"
        self.log_dir = workdir / "log"
        self.process: subprocess.Popen[bytes] | None = None

    def _config_text(self) -> str:
        macros = "".join(f"{name} = {value}\n" for name, value in self.macros.items())
        if self.layout == "debian-split":
            return self._debian_macros() + macros + self._debian_split()
        if self.layout == "debian-single":
            return self._debian_macros() + macros + self._debian_single()
        return self._relay(macros)

    def _debian_macros(self) -> str:
        """What update-exim4.conf would seed, pointed at the private folders."""
        return f"""\
SPOOLDIR = {self.workdir / "spool"}
CONFDIR = {self.workdir}
MAIN_LOCAL_DOMAINS = @:localhost
MAIN_RELAY_TO_DOMAINS =
MAIN_RELAY_NETS = 127.0.0.1
ETC_MAILNAME = mta.nullmx.test
DC_eximconfig_configtype = internet
DCconfig_internet = 1
"""

    def _debian_split(self) -> str:
        parts: list[str] = []
        for section in DEBIAN_SECTIONS:
            folder = DEBIAN_CONFIG / "conf.d" / section
            files = {path.name: path for path in folder.iterdir()}
            if section == "acl":
                files[SHIPPED_ACL.name] = SHIPPED_ACL
            # update-exim4.conf reads only names made of letters, digits, '_' and '-'.
            files = {name: path for name, path in files.items() if _CONF_D_NAME.match(name)}
            if section == "acl" and SHIPPED_ACL.name not in files:
                raise ValueError(f"update-exim4.conf would skip {SHIPPED_ACL.name}")
            for name in sorted(files):
                text = files[name].read_text()
                if name == "30_exim4-config_check_rcpt":
                    text = _after_line(text, "acl_check_rcpt:", self._rcpt_statement())
                parts.append(text)
        return "".join(parts)

    def _debian_single(self) -> str:
        text = (DEBIAN_CONFIG / "exim4.conf.template").read_text()
        text = _after_line(text, "begin acl", f".include {SHIPPED_ACL}\n")
        return _after_line(text, "acl_check_rcpt:", self._rcpt_statement())

    def _rcpt_statement(self) -> str:
        return shipped_statement(SHIPPED_RCPT, "require acl = acl_nullmx_rcpt")

    def _relay(self, macros: str) -> str:
        rcpt = self._rcpt_statement()
        mail = (
            shipped_statement(SHIPPED_MAIL, "require acl = acl_nullmx_mail")
            if self.check_senders
            else ""
        )
        return f"""\
primary_hostname = mta.nullmx.test
exim_path = {EXIM}
tls_advertise_hosts =
spool_directory = {self.workdir / "spool"}
log_file_path = {self.log_dir}/%slog
pid_file_path = {self.workdir}/exim.pid
daemon_smtp_ports = {self.port}
local_interfaces = <; 127.0.0.1
host_lookup =
rfc1413_hosts =
keep_environment =
acl_smtp_mail = acl_check_mail
acl_smtp_rcpt = acl_check_rcpt
{macros}
begin acl

.include {SHIPPED_ACL}

acl_check_mail:
{mail}
  accept

acl_check_rcpt:
{rcpt}
  accept

begin routers

sink:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = sink

begin transports

sink:
  driver = smtp
  port = {self.next_hop}
  allow_localhost
  hosts_avoid_tls = *

begin retry

*  *  F,1h,10m
"""

    def write_config(self) -> Path:
        fetch_exim()
        exim_folder(self.workdir / "spool")
        exim_folder(self.log_dir)
        self.config.write_text(self._config_text())
        # Exim refuses a configuration that others may write.
        self.config.chmod(0o644)
        return self.config

    def host_check(self, commands: list[str], timeout: float = 60.0) -> HostCheck:
        """`exim -bh 127.0.0.1` fed `commands` (CRLF added); the replies and the log."""
        self.write_config()
        result = self.netns.run(
            [str(EXIM), "-C", str(self.config), "-bh", "127.0.0.1"],
            stdin="".join(f"{command}\r\n" for command in commands),
            timeout=timeout,
        )
        if result.returncode != 0 and not result.stdout:
            raise RuntimeError(f"exim -bh failed: {result.stderr}")
        return HostCheck(group_replies(result.stdout), result.stderr)

    def start(self) -> EximInstance:
        if self.layout != "relay":
            raise ValueError("only the relay layout knows where to deliver")
        self.write_config()
        self.process = subprocess.Popen(
            [*self.netns.prefix, str(EXIM), "-C", str(self.config), "-bdf"],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "exim.stderr").open("wb"),
        )
        try:
            with self.netns.entered():
                wait_for_smtp(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"exim did not start: {self.main_log()}") from None
        return self

    def main_log(self) -> str:
        parts = [self.log_dir / "mainlog", self.log_dir / "paniclog", self.workdir / "exim.stderr"]
        return "".join(path.read_text(errors="replace") for path in parts if path.exists())

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def _after_line(text: str, line: str, addition: str) -> str:
    """`text` with `addition` inserted after its one line that reads `line`."""
    marker = f"\n{line}\n"
    if text.count(marker) != 1:
        raise ValueError(f"Debian's configuration no longer has one line {line!r}")
    return text.replace(marker, marker + addition)


def assert_rewrapped(exim_lines: list[str], milter_lines: list[str]) -> None:
    """Exim's reply is the milter's, its lines wrapped: Exim splits every reply line longer
    than 75 characters at a space (preferring one after a colon), with the code and the
    enhanced code repeated on each piece. So each milter line is one or more consecutive
    Exim lines joined by single spaces, in order, and nothing else is there."""
    code, enhanced = milter_lines[0][:3], milter_lines[0][4:].split(" ", 1)[0]
    last = len(exim_lines) - 1
    texts: list[str] = []
    for index, line in enumerate(exim_lines):
        head = f"{code}{' ' if index == last else '-'}{enhanced} "
        assert line.startswith(head), f"line {index} does not start with {head!r}: {exim_lines}"
        texts.append(line[len(head) :])
    wanted = [line[len(code) + 1 + len(enhanced) + 1 :] for line in milter_lines]
    for text in wanted:
        assert texts, f"Exim's reply ends before {text!r}: {exim_lines}"
        joined = texts.pop(0)
        while joined != text and texts and len(joined) < len(text):
            joined += " " + texts.pop(0)
        assert joined == text, f"Exim's lines do not rebuild {text!r}: {exim_lines}"
    assert not texts, f"Exim's reply has more than the milter's: {texts}"
