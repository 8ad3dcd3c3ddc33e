"""Runs inside the throwaway Debian 12 (tests/debian_chroot.py), as PID 1 of its namespace:
install version N, edit the conffile, upgrade to N+1, purge; print what the system looked like
after each step as one JSON object. systemd cannot run there, so a stand-in takes the calls
the maintainer scripts make (deb-systemd-invoke, systemctl), logs them, and runs
nullmx-milter.service the way its unit says (ExecStart=, User=, Group=, UMask=)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

UNIT = Path("/lib/systemd/system/nullmx-milter.service")
CONFIG = Path("/etc/nullmx-milter/nullmx-milter.toml")
SOCKET_DIR = Path("/var/spool/postfix/nullmx-milter")
FAKE = Path("/run/fake-systemd")
CALLS = FAKE / "calls"
PIDFILE = FAKE / "nullmx-milter.pid"
SHIMS = Path("/usr/local/sbin")
DPKG_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
ADMIN_EDIT = 'nameservers = ["127.0.0.1"]  # edited by the admin'
SHIM = """#!/bin/sh
echo "{name} $*" >> {calls}
{action}
"""


def unit_value(key: str) -> str:
    values = [
        line.split("=", 1)[1].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]
    assert len(values) == 1, (key, values)
    return values[0]


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for PID 1 to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def unit_start() -> None:
    argv = shlex.split(unit_value("ExecStart"))
    command = ["setpriv", f"--reuid={unit_value('User')}", f"--regid={unit_value('Group')}"]
    command += ["--init-groups", "--", "sh", "-c", f'umask {unit_value("UMask")} && exec "$@"']
    command += ["sh", *argv]
    with Path("/var/log/nullmx-milter.log").open("ab") as log:
        daemon = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    PIDFILE.write_text(str(daemon.pid))
    socket_path = SOCKET_DIR / "nullmx-milter.sock"
    deadline = time.monotonic() + 30
    while not socket_path.exists() and time.monotonic() < deadline and running(daemon.pid):
        time.sleep(0.05)


def unit_stop() -> None:
    if not PIDFILE.exists():
        return
    pid = int(PIDFILE.read_text())
    if running(pid):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + float(unit_value("TimeoutStopSec").rstrip("s"))
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    PIDFILE.unlink()


def unit_action(action: str) -> None:
    """deb-systemd-invoke ACTION nullmx-milter.service, done the way systemd would."""
    if action in ("stop", "restart"):
        unit_stop()
    if action in ("start", "restart"):
        unit_start()


def install_shims() -> None:
    FAKE.mkdir(parents=True)
    Path("/run/systemd/system").mkdir(parents=True)  # what maintainer scripts test for
    CALLS.touch()
    me = Path(__file__).resolve()
    invoke = f'[ "$2" = nullmx-milter.service ] || exit 0\nexec python3 {me} unit "$1"'
    for name, action in (("deb-systemd-invoke", invoke), ("systemctl", "exit 0")):
        shim = SHIMS / name
        shim.write_text(SHIM.format(name=name, calls=CALLS, action=action))
        shim.chmod(0o755)


def reap() -> None:
    """PID 1's duty: collect the exit status of orphans that have died."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def processes() -> list[str]:
    """Every live process of this namespace but PID 1 (us): 'pid user command'."""
    reap()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == "1" or not running(int(entry.name)):
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            owner = entry.stat().st_uid
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append(f"{entry.name} uid={owner} {command}")
    return found


def state() -> dict[str, Any]:
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version} ${db:Status-Abbrev}", "nullmx-milter"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    pid = int(PIDFILE.read_text()) if PIDFILE.exists() else None
    socket_path = SOCKET_DIR / "nullmx-milter.sock"
    return {
        "package": version,
        "config": CONFIG.read_text() if CONFIG.exists() else None,
        "config_dir": CONFIG.parent.exists(),
        "conffile_leftovers": sorted(p.name for p in CONFIG.parent.glob("*.dpkg-*"))
        if CONFIG.parent.exists()
        else [],
        "socket_dir": SOCKET_DIR.exists(),
        "socket": f"{socket_path.stat().st_uid}:{socket_path.stat().st_gid} "
        f"{socket_path.stat().st_mode & 0o7777:o}"
        if socket_path.exists()
        else None,
        "daemon_pid": pid,
        "daemon_running": pid is not None and running(pid),
        "processes": processes(),
        "calls": CALLS.read_text().splitlines(),
        "user": any(
            line.startswith("nullmx-milter:")
            for line in Path("/etc/passwd").read_text().splitlines()
        ),
    }


def apt(*args: str) -> str:
    result = subprocess.run(
        # apt gives maintainer scripts DPkg::Path (no /usr/local): put the stand-in first.
        ["apt-get", "-y", "-o", "Dpkg::Use-Pty=0", "-o", f"DPkg::Path={SHIMS}:{DPKG_PATH}", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    output = f"$ apt-get {' '.join(args)}\n{result.stdout}{result.stderr}"
    assert result.returncode == 0, output
    return output


def scenario(old_deb: str, new_deb: str) -> dict[str, Any]:
    install_shims()
    report: dict[str, Any] = {"log": []}
    report["log"].append(apt("install", old_deb))
    report["installed"] = state()
    text = CONFIG.read_text()
    assert "nameservers = []" in text, text
    CONFIG.write_text(text.replace("nameservers = []", ADMIN_EDIT))
    report["log"].append(apt("install", new_deb))
    report["upgraded"] = state()
    report["log"].append(apt("purge", "nullmx-milter"))
    report["purged"] = state()
    log = Path("/var/log/nullmx-milter.log")
    report["daemon_log"] = log.read_text(errors="replace") if log.exists() else ""
    return report


def main(argv: list[str]) -> int:
    if argv[:1] == ["unit"]:
        unit_action(argv[1])
        return 0
    old_deb, new_deb = argv[1], argv[2]
    try:
        report = scenario(old_deb, new_deb)
    except AssertionError as failed:
        report = {"failed": str(failed)}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
