"""The wheel and the Debian package, built and installed, and the daemon run as the unit says."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from nullmx_milter import __version__

from daemon_process import toml_config, wait_for_port
from knot import KnotServer, free_port
from milter_client import MilterClient
from systemd_unit import REPO, FakeSystemd, Unit, group_id, passwd_entry, start_as

# Building the Debian package and a fresh venv takes minutes on a shared host.
pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

# What the postfix package would add: the group the socket directory is setgid to.
POSTFIX_GID = 64999
# Someone who is neither the milter's user nor in group postfix.
STRANGER = (64998, 64997)
RUNTIME_DEPENDENCIES = ["python3-milter", "python3-dnspython", "python3-prometheus-client"]
DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def check_config(path: Path, nameserver: str) -> Path:
    path.write_text(
        f'[dns]\nnameservers = ["{nameserver}"]\ntimeout = 1.0\n[metrics]\nlisten = ""\n'
    )
    return path


def assert_checks(command: list[str], env: dict[str, str] | None = None) -> None:
    """`check` must tell a null-MX recipient (556 5.1.10) from a deliverable one."""
    result = subprocess.run(
        [*command, "a@null.test", "b@real.test"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    rejected, accepted = result.stdout.split("\n\n")
    assert "verdict:  rejected" in rejected
    assert "reply:    556-5.1.10 " in rejected
    assert "verdict:  accepted" in accepted


def test_wheel_installs_into_a_fresh_venv_and_checks(knot: KnotServer, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
        capture_output=True,
        check=True,
    )
    sdists = list(dist.glob("nullmx_milter-*.tar.gz"))
    wheels = list(dist.glob("nullmx_milter-*-py3-none-any.whl"))
    assert len(sdists) == len(wheels) == 1
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin" / "pip", "install", "-q", str(wheels[0])], capture_output=True, check=True
    )
    binary = str(venv / "bin" / "nullmx-milter")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"nullmx-milter {__version__}"
    config = check_config(tmp_path / "check.toml", knot.nameserver)
    assert_checks([binary, "check", "--config", str(config)])


@dataclass(frozen=True)
class DebianRoot:
    """The .deb and a throwaway root it is unpacked into, with its users and directories."""

    deb: Path
    root: Path

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def env(self) -> dict[str, str]:
        """Debian's python3 and its python3-* packages, plus the unpacked package."""
        return {
            "PATH": DEBIAN_PATH,
            "PYTHONPATH": str(self.path("/usr/lib/python3/dist-packages")),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/nonexistent",
        }


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianRoot]:
    """Build the package, unpack it into a root, and do there what its maintainer scripts
    do (systemd-sysusers, systemd-tmpfiles), as if the postfix package had been installed."""
    out = tmp_path_factory.mktemp("deb")
    subprocess.run([REPO / "scripts" / "build-deb", str(out)], capture_output=True, check=True)
    (deb,) = out.glob("nullmx-milter_*_all.deb")
    # Short: the socket path below it must fit a sockaddr_un (108 bytes).
    root = Path(tempfile.mkdtemp(prefix="nmx", dir="/tmp"))
    try:
        root.chmod(0o755)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        subprocess.run(
            [
                "systemd-sysusers",
                f"--root={root}",
                str(root / "usr/lib/sysusers.d/nullmx-milter.conf"),
            ],
            capture_output=True,
            check=True,
        )
        with (root / "etc/group").open("a") as groups:
            groups.write(f"postfix:x:{POSTFIX_GID}:\n")
        (root / "var/spool/postfix").mkdir(parents=True)
        subprocess.run(
            [
                "systemd-tmpfiles",
                f"--root={root}",
                "--create",
                str(root / "usr/lib/tmpfiles.d/nullmx-milter.conf"),
            ],
            check=True,
        )
        yield DebianRoot(deb, root)
    finally:
        shutil.rmtree(root)


def test_debian_package_is_lintian_clean_at_pedantic(debian_root: DebianRoot) -> None:
    """Not one tag at any level, pedantic and experimental included; an overridden tag must
    carry its reason (a comment) in the override file."""
    result = subprocess.run(
        [
            *("lintian", "--pedantic", "--display-info", "--display-experimental"),
            *("--tag-display-limit", "0", str(debian_root.deb)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": DEBIAN_PATH},
        check=False,
    )
    tags = [line for line in result.stdout.splitlines() if re.match(r"[EWIPX]: ", line)]
    print(f"lintian --pedantic: {len(tags)} tags")
    assert (result.returncode, tags) == (0, [])
    overrides = (REPO / "debian" / "nullmx-milter.lintian-overrides").read_text().splitlines()
    for number, line in enumerate(overrides):
        if line and not line.startswith("#"):
            assert overrides[number - 1].startswith("#"), f"override without a reason: {line}"


def test_debian_package_depends_on_debian_python_packages(debian_root: DebianRoot) -> None:
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(debian_root.deb), "Depends", "Version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    depends = {item.split()[0] for item in fields.split("\n")[0].split(":", 1)[1].split(",")}
    assert {*RUNTIME_DEPENDENCIES, "python3-idna"} <= depends
    assert f"Version: {__version__}" in fields
    conffiles = subprocess.run(
        ["dpkg-deb", "-I", str(debian_root.deb), "conffiles"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert conffiles == ["/etc/nullmx-milter/nullmx-milter.toml"]
    for installed in (
        "/usr/bin/nullmx-milter",
        "/lib/systemd/system/nullmx-milter.service",
        "/lib/systemd/system/nullmx-milter.socket",
        "/usr/share/doc/nullmx-milter/README.Debian.gz",
        "/usr/lib/sysusers.d/nullmx-milter.conf",
        "/usr/lib/tmpfiles.d/nullmx-milter.conf",
        "/usr/share/man/man8/nullmx-milter.8.gz",
        "/usr/share/man/man5/nullmx-milter.toml.5.gz",
        "/usr/share/doc/nullmx-milter/examples/nullmx-milter.toml",
    ):
        assert debian_root.path(installed).is_file(), installed
    for unit in ("nullmx-milter.service", "nullmx-milter.socket"):
        shipped = (REPO / "systemd" / unit).read_bytes()
        assert debian_root.path(f"/lib/systemd/system/{unit}").read_bytes() == shipped


def test_debian_package_ships_the_mta_and_monitoring_wiring_as_examples(
    debian_root: DebianRoot,
) -> None:
    """Every file under config/ that the README tells people to copy, uncompressed, under
    examples/ in a folder named after what it is for."""
    examples = debian_root.path("/usr/share/doc/nullmx-milter/examples")
    shipped = sorted(
        str(path.relative_to(REPO / "config"))
        for path in (REPO / "config").rglob("*")
        if path.is_file()
    )
    assert {"postfix/main.cf", "sendmail/nullmx-milter.mc", "nullmx-milter.toml"} <= set(shipped)
    installed = sorted(
        str(path.relative_to(examples)) for path in examples.rglob("*") if path.is_file()
    )
    print("examples:", " ".join(installed))
    assert installed == shipped
    for name in shipped:
        assert (examples / name).read_bytes() == (REPO / "config" / name).read_bytes(), name
    readme = debian_root.path("/usr/share/doc/nullmx-milter/README.Debian.gz")
    readme_debian = gzip.decompress(readme.read_bytes()).decode()
    for name in shipped:
        assert name in readme_debian, f"README.Debian does not list {name}"


def test_installed_binary_runs_on_debian_python_packages(
    debian_root: DebianRoot, knot: KnotServer, tmp_path: Path
) -> None:
    binary = str(debian_root.path("/usr/bin/nullmx-milter"))
    assert Path(binary).read_text().startswith("#!/usr/bin/python3\n")
    env = debian_root.env()
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, env=env
    )
    assert version.stdout.strip() == f"nullmx-milter {__version__}"
    config = check_config(tmp_path / "check.toml", knot.nameserver)
    assert_checks([binary, "check", "--config", str(config)], env)


def test_installed_units_verify_with_their_man_page(
    debian_root: DebianRoot, tmp_path: Path
) -> None:
    binary = str(debian_root.path("/usr/bin/nullmx-milter"))
    units = []
    for name in ("nullmx-milter.service", "nullmx-milter.socket"):
        installed = debian_root.path(f"/lib/systemd/system/{name}")
        units.append(tmp_path / name)
        units[-1].write_text(installed.read_text().replace("/usr/bin/nullmx-milter", binary))
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANPATH": str(debian_root.path("/usr/share/man"))},
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def can_connect(path: Path, uid: int, gid: int) -> bool:
    """Whether uid:gid (no other groups) may connect to the unix socket at `path`."""
    probe = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 or "PermissionError" in result.stderr, result.stderr
    return result.returncode == 0


def test_daemon_runs_as_the_unit_says_and_only_postfix_may_connect(
    debian_root: DebianRoot, knot: KnotServer, tmp_path: Path
) -> None:
    """ExecStart=, User=, Group= and UMask= from the installed unit; the installed config
    with the socket moved into the throwaway root and the test DNS server."""
    unit = Unit.parse(debian_root.path("/lib/systemd/system/nullmx-milter.service"))
    argv = [str(debian_root.path(arg)) if arg.startswith("/") else arg for arg in unit.exec_start()]
    uid, _primary = passwd_entry(debian_root.root, unit.value("User"))
    gid = group_id(debian_root.root, unit.value("Group"))
    assert uid != 0

    config = debian_root.path("/etc/nullmx-milter/nullmx-milter.toml")
    text = config.read_text()
    socket_path = debian_root.path("/var/spool/postfix/nullmx-milter/nullmx-milter.sock")
    metrics_port = free_port(socket.SOCK_STREAM)
    edited = text.replace(
        '"unix:/var/spool/postfix/', f'"unix:{debian_root.root}/var/spool/postfix/'
    ).replace("nameservers = []", f'nameservers = ["{knot.nameserver}"]\ntimeout = 1.0')
    assert edited.count(str(debian_root.root)) == 1
    assert knot.nameserver in edited
    config.write_text(edited + f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n')

    systemd = FakeSystemd(f"@nullmx-unit-{os.getpid()}-{time.monotonic_ns()}")
    log_path = tmp_path / "stderr.log"
    process = start_as(
        argv,
        uid,
        gid,
        unit.value("UMask"),
        {**debian_root.env(), "NOTIFY_SOCKET": systemd.address},
        log_path,
    )
    try:
        assert systemd.receive() == "READY=1", log_path.read_text()
        info = socket_path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert (info.st_uid, info.st_gid) == (uid, POSTFIX_GID)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert can_connect(socket_path, uid + 1000, POSTFIX_GID), "postfix must connect"
        assert not can_connect(socket_path, *STRANGER), "nobody else may"

        with MilterClient(str(socket_path)) as client:
            answer = client.rcpt("<a@null.test>", queue_id="4Xyz1ABC")
            assert (answer.kind, answer.code) == ("reply", "556")
            assert client.rcpt("<b@real.test>").kind == "continue"

        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert systemd.receive() == "STOPPING=1"
        assert process.wait(unit.seconds("TimeoutStopSec")) == 0
        print(f"graceful stop as the unit's user: {time.monotonic() - began:.2f}s")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        systemd.close()
    log = log_path.read_text()
    assert "refusing" not in log
    decision = re.search(
        r"^INFO \S+ conn=\d+ qid=(\S+) role=recipient verdict=rejected ", log, re.M
    )
    assert decision, log
    assert decision.group(1) == "4Xyz1ABC"
    assert "stopped" in log


def listen_as_socket_unit(unit: Unit, root: DebianRoot, uid: int) -> socket.socket:
    """What systemd does for nullmx-milter.socket: bind ListenStream= (moved into the root),
    give it SocketUser=, SocketGroup= and SocketMode=, listen with Backlog=."""
    path = root.path(unit.value("ListenStream", "Socket"))
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(path))
    assert unit.value("SocketUser", "Socket") == "nullmx-milter"
    assert unit.value("SocketGroup", "Socket") == "postfix"
    os.chown(path, uid, POSTFIX_GID)
    path.chmod(int(unit.value("SocketMode", "Socket"), 8))
    listening.listen(int(unit.value("Backlog", "Socket")))
    return listening


def rcpt_code(path: Path, recipient: str) -> str:
    with MilterClient(str(path)) as client:
        return client.rcpt(recipient).code


def test_socket_activated_daemon_serves_the_socket_units_socket_across_a_restart(
    debian_root: DebianRoot, knot: KnotServer, tmp_path: Path
) -> None:
    """The installed socket unit and service together, as README.Debian sets them up: the
    config says fd:3, the daemon serves systemd's socket and leaves it in place, and a
    connection made while no daemon runs waits in the backlog for the next one."""
    service = Unit.parse(debian_root.path("/lib/systemd/system/nullmx-milter.service"))
    socket_unit = Unit.parse(debian_root.path("/lib/systemd/system/nullmx-milter.socket"))
    argv = [
        str(debian_root.path(arg)) if arg.startswith("/") else arg for arg in service.exec_start()
    ]
    uid, _primary = passwd_entry(debian_root.root, service.value("User"))
    gid = group_id(debian_root.root, service.value("Group"))
    # The packaged config as shipped (another test edits the unpacked copy).
    installed = (REPO / "systemd" / "nullmx-milter.toml").read_text()
    unix_line = 'socket = "unix:/var/spool/postfix/nullmx-milter/nullmx-milter.sock"'
    assert installed.count(unix_line) == 1
    config = debian_root.path("/etc/nullmx-milter/socket-activated.toml")  # readable by uid
    metrics_port = free_port(socket.SOCK_STREAM)
    config.write_text(
        installed.replace(unix_line, 'socket = "fd:3"').replace(
            "nameservers = []", f'nameservers = ["{knot.nameserver}"]\ntimeout = 1.0'
        )
        + f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
    )
    argv[argv.index("--config") + 1] = str(config)
    socket_path = debian_root.path(socket_unit.value("ListenStream", "Socket"))
    listening = listen_as_socket_unit(socket_unit, debian_root, uid)
    inode = socket_path.stat().st_ino
    systemd = FakeSystemd(f"@nullmx-socket-{os.getpid()}-{time.monotonic_ns()}")
    processes: list[subprocess.Popen[bytes]] = []

    def start(log: Path) -> subprocess.Popen[bytes]:
        env = {**debian_root.env(), "NOTIFY_SOCKET": systemd.address}
        processes.append(start_as(argv, uid, gid, service.value("UMask"), env, log, listening))
        return processes[-1]

    def stop(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        assert systemd.receive() == "STOPPING=1"
        assert process.wait(service.seconds("TimeoutStopSec")) == 0

    try:
        first = start(tmp_path / "first.log")
        assert systemd.receive() == "READY=1", (tmp_path / "first.log").read_text()
        with MilterClient(str(socket_path)) as client:
            assert client.rcpt("<a@null.test>").code == "556"
        stop(first)
        # systemd's socket, untouched: same inode, owner and mode; nothing listens but the
        # kernel, which queues the next connection.
        info = socket_path.stat()
        assert (info.st_ino, info.st_uid, info.st_gid) == (inode, uid, POSTFIX_GID)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert not can_connect(socket_path, *STRANGER), "nobody else may"
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(rcpt_code, socket_path, "<b@null.test>")
            time.sleep(0.5)
            assert not pending.done(), "served with no daemon running?"
            began = time.monotonic()
            second = start(tmp_path / "second.log")
            assert systemd.receive() == "READY=1", (tmp_path / "second.log").read_text()
            assert pending.result(timeout=30) == "556"
            print(f"queued connection answered {time.monotonic() - began:.2f}s after restart")
        stop(second)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        systemd.close()
        listening.close()
    for log in ("first.log", "second.log"):
        assert "refusing" not in (tmp_path / log).read_text()


def syscall_set(name: str) -> set[str]:
    """The system calls in a systemd set (@name), expanded, or a single call."""
    if not name.startswith("@"):
        return {name}
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= syscall_set(entry)
    return calls


def allowed_syscalls(unit: Unit) -> set[str]:
    """SystemCallFilter= lines in order: an allow list, then ~deny lists."""
    allowed: set[str] = set()
    for value in unit.values("SystemCallFilter"):
        deny = value.startswith("~")
        for name in value.removeprefix("~").split():
            allowed = allowed - syscall_set(name) if deny else allowed | syscall_set(name)
    return allowed


def test_daemon_stays_inside_the_units_syscall_filter_and_memory_rules(
    debian_root: DebianRoot, knot: KnotServer, tmp_path: Path
) -> None:
    """What SystemCallFilter= and MemoryDenyWriteExecute= would forbid, seen with strace
    (systemd cannot run the unit here): every call the daemon makes while it starts, serves
    a session and metrics, and stops."""
    unit = Unit.parse(debian_root.path("/lib/systemd/system/nullmx-milter.service"))
    assert unit.value("MemoryDenyWriteExecute") == "yes"
    milter_port, metrics_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    config = tmp_path / "trace.toml"
    config.write_text(toml_config([knot.nameserver], milter_port, metrics_port))
    trace = tmp_path / "strace.txt"
    binary = str(debian_root.path("/usr/bin/nullmx-milter"))
    command = ["strace", "-f", "-qq", "-o", str(trace)]
    command += [binary, "run", "--allow-root", "--config", str(config)]
    tracer = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=debian_root.env(),
    )
    try:
        wait_for_port(milter_port)
        wait_for_port(metrics_port)
        with MilterClient(milter_port) as client:
            assert client.rcpt("<a@null.test>", queue_id="Q1").code == "556"
        with socket.create_connection(("127.0.0.1", metrics_port)) as http:
            http.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert http.recv(100).startswith(b"HTTP/1.0 200")
        # SIGTERM for the daemon, not for strace.
        children = Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGTERM)
        assert tracer.wait(unit.seconds("TimeoutStopSec")) == 0
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
    lines = trace.read_text().splitlines()
    used = {
        match.group(1)
        for line in lines
        if (match := re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line))
    }
    assert len(used) > 20, lines[:20]
    allowed = allowed_syscalls(unit)
    assert not {"setuid", "reboot", "setrlimit", "mount"} & allowed
    assert sorted(used - allowed) == []
    writable_and_executable = [
        line
        for line in lines
        if re.search(r"\b(mmap|mprotect|pkey_mprotect)\(", line)
        and "PROT_EXEC" in line
        and ("PROT_WRITE" in line or "mprotect(" in line)
    ]
    assert writable_and_executable == []
