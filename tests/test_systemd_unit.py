"""The shipped systemd units, sysusers, tmpfiles and production config: checked statically."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from nullmx_milter.config import Config, MilterConfig, load_config

from daemon_process import CONSOLE_SCRIPT, MilterDaemon
from knot import KnotServer
from milter_client import MilterClient
from systemd_unit import REPO, SERVICE, SOCKET, Unit

PRODUCTION_CONFIG = REPO / "systemd" / "nullmx-milter.toml"
SYSUSERS = REPO / "systemd" / "nullmx-milter.sysusers"
TMPFILES = REPO / "systemd" / "nullmx-milter.tmpfiles"


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify wants ExecStart's binary to exist: point it at the console script under test.
    # (The man page check runs against the Debian package, which installs one.) The socket
    # unit is verified next to the service it activates.
    service = tmp_path / SERVICE.name
    service.write_text(SERVICE.read_text().replace("/usr/bin/nullmx-milter", CONSOLE_SCRIPT))
    socket = tmp_path / SOCKET.name
    socket.write_text(SOCKET.read_text())
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(service), str(socket)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_is_rated_ok_or_better_by_systemd_analyze_security() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(SERVICE)],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", result.stdout)
    assert match, result.stdout
    print(f"systemd-analyze security: {match.group(1)} {match.group(2)}")
    assert match.group(2) in ("SAFE", "OK"), result.stdout
    # `security` rates the sandbox of the processes a unit runs; the socket unit runs none
    # (systemd itself listens), so the service's rating covers both.
    exec_settings = [key for _sec, key, _value in Unit.parse(SOCKET).settings if "Exec" in key]
    assert exec_settings == []


def test_unit_runs_unprivileged_notifies_and_restarts() -> None:
    unit = Unit.parse(SERVICE)
    assert unit.value("Type") == "notify"
    assert unit.value("User") not in ("", "root", "0")
    assert unit.value("Restart") == "on-failure"
    assert unit.value("CapabilityBoundingSet") == ""
    assert unit.value("NoNewPrivileges") == "yes"
    assert unit.value("ProtectSystem") == "strict"
    assert unit.value("MemoryDenyWriteExecute") == "yes"
    assert unit.value("RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    argv = unit.exec_start()
    assert argv[0] == "/usr/bin/nullmx-milter"
    assert argv[1] == "run"
    assert "--allow-root" not in argv
    assert argv[argv.index("--config") + 1] == "/etc/nullmx-milter/nullmx-milter.toml"
    # The daemon reloads on SIGUSR1; SIGHUP would stop it (libmilter's).
    assert unit.value("ExecReload") == "/bin/kill -USR1 $MAINPID"


def test_socket_unit_listens_where_the_plain_setup_would_for_postfix_only() -> None:
    """Same path, owner and mode as the socket the daemon opens itself in the plain setup,
    so that Postfix's main.cf and the tmpfiles directory serve both setups."""
    service, socket = Unit.parse(SERVICE), Unit.parse(SOCKET)
    assert SOCKET.stem == SERVICE.stem, "a service inherits the sockets of its namesake"
    # No Sockets= in the service: it would pull the socket unit into the plain setup too.
    assert service.values("Sockets") == []
    configured = load_config(PRODUCTION_CONFIG).milter.socket
    assert socket.value("ListenStream", "Socket") == configured.removeprefix("unix:")
    assert socket.value("SocketUser", "Socket") == service.value("User")
    entries = [line.split() for line in TMPFILES.read_text().splitlines() if line[:1] == "d"]
    assert socket.value("SocketGroup", "Socket") == entries[0][4] == "postfix"
    assert socket.value("SocketMode", "Socket") == "0660"
    assert socket.value("Accept", "Socket") == "no"
    assert socket.value("WantedBy", "Install") == "sockets.target"


def test_sysusers_tmpfiles_config_and_unit_agree() -> None:
    unit = Unit.parse(SERVICE)
    user = unit.value("User")
    sysusers = [line.split() for line in SYSUSERS.read_text().splitlines() if line[:1] == "u"]
    assert [fields[1] for fields in sysusers] == [user]
    socket = load_config(PRODUCTION_CONFIG).milter.socket
    assert socket.startswith("unix:/var/spool/postfix/")
    directory = str(Path(socket.removeprefix("unix:")).parent)
    assert unit.value("ReadWritePaths") == f"-{directory}"
    entries = [line.split() for line in TMPFILES.read_text().splitlines() if line[:1] == "d"]
    assert entries == [["d", directory, "2750", user, "postfix", "-"]]
    # The setgid directory gives the socket group postfix; the umask leaves it rw for the
    # group only (connect(2) needs write permission).
    assert int(unit.value("UMask"), 8) == 0o117


def test_production_config_differs_from_the_defaults_only_in_the_socket() -> None:
    config = load_config(PRODUCTION_CONFIG)
    socket = "unix:/var/spool/postfix/nullmx-milter/nullmx-milter.sock"
    assert config == Config(milter=MilterConfig(socket=socket))
    assert Config().milter.socket == "inet:8894@127.0.0.1", "make run keeps TCP"


@pytest.mark.integration
def test_graceful_stop_fits_the_units_stop_timeout(knot: KnotServer, tmp_path: Path) -> None:
    daemon = MilterDaemon(tmp_path, [knot.nameserver]).start()
    with MilterClient(daemon.milter_port) as client:
        assert client.rcpt("<a@real.test>").kind == "continue"
    began = time.monotonic()
    assert daemon.stop() == 0
    took = time.monotonic() - began
    print(f"graceful stop took {took:.2f}s")
    assert took * 2 < Unit.parse(SERVICE).seconds("TimeoutStopSec")
