"""A bare Debian 12 to install the package into: built once with debootstrap (cached), then
used through a throwaway overlay in private mount, PID and network namespaces, so that nothing
the package or its tests do reaches the host (no service, no port, no user, no file)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
# What the tests install the package next to: its dependencies, the autopkgtest's (Knot,
# Postfix) and autopkgtest itself. Installed once here, since the namespaces have no network.
BASE_PACKAGES = (
    "autopkgtest",
    "knot",
    "postfix",
    "procps",
    "python3-dnspython",
    "python3-idna",
    "python3-milter",
    "python3-prometheus-client",
    "systemd",
)
CACHE = Path("/var/tmp/nullmx-milter-debian-root")
# No service may start in the base while it is being built (Postfix, Knot).
POLICY_RC_D = "#!/bin/sh\nexit 101\n"
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def host_mirror() -> str:
    """The Debian mirror apt on this machine uses (deb.debian.org if none is named)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        match = re.search(r"^URIs:\s*(\S+/debian)\s*$", sources.read_text(), re.M)
        if match:
            return match.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        match = re.search(rf"^deb\s+(\S+/debian)\s+{SUITE}\s", legacy.read_text(), re.M)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def _build_base(root: Path) -> None:
    mirror = host_mirror()
    subprocess.run(
        ["debootstrap", "--variant=minbase", SUITE, str(root), mirror],
        capture_output=True,
        check=True,
    )
    (root / "etc/apt/sources.list").write_text(
        f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n"
        f"deb {mirror.removesuffix('/debian')}/debian-security {SUITE}-security main\n"
    )
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    script = (
        "set -e\n"
        "echo 'postfix postfix/main_mailer_type select No configuration'"
        " | debconf-set-selections\n"
        "apt-get -qq update\n"
        "apt-get -qq install -y --no-install-recommends " + " ".join(BASE_PACKAGES) + "\n"
        "apt-get clean\n"
    )
    subprocess.run(
        [
            *("unshare", "--mount", "--pid", "--fork", "--kill-child"),
            f"--mount-proc={root / 'proc'}",
            *("chroot", str(root), "sh", "-c", script),
        ],
        capture_output=True,
        check=True,
        env={"PATH": DEBIAN_PATH, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"},
    )
    # Offline from now on: apt sees only what the tests give it.
    (root / "etc/apt/sources.list").write_text("")
    for lists in (root / "var/lib/apt/lists").glob("*_dists_*"):
        lists.unlink()
    (root / "etc/resolv.conf").write_text("nameserver 127.0.0.1\n")


def base_root() -> Path:
    """The cached bare Debian 12 with BASE_PACKAGES (built on first use, about 2 minutes)."""
    key = hashlib.sha256(repr((SUITE, BASE_PACKAGES, POLICY_RC_D)).encode()).hexdigest()[:12]
    CACHE.mkdir(parents=True, exist_ok=True)
    home = CACHE / key
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "complete").exists():
            shutil.rmtree(home, ignore_errors=True)
            (home / "root").mkdir(parents=True)
            _build_base(home / "root")
            (home / "complete").touch()
    return home / "root"


@dataclass(frozen=True)
class Sandbox:
    """One throwaway system: the base under an overlay whose upper layer lives in `work`."""

    base: Path
    work: Path

    @property
    def upper(self) -> Path:
        return self.work / "upper"

    def put(self, absolute: str, source: Path) -> str:
        """Place a file or directory at `absolute` inside the system (before run())."""
        target = self.upper / absolute.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
        return absolute

    def run(self, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run `command` chrooted in the system, as PID 1 of its own PID namespace, with a
        loopback-only network namespace, a fresh /run and /tmp; every process it leaves is
        killed when it returns. The overlay's upper layer keeps what it changed."""
        merged = self.work / "root"
        for directory in (self.upper, self.work / "overlay-work", merged):
            directory.mkdir(parents=True, exist_ok=True)
        setup = (
            "set -e\n"
            f"mount -t overlay overlay -o lowerdir={self.base},upperdir={self.upper},"
            f"workdir={self.work / 'overlay-work'} {merged}\n"
            f"mount -t proc proc {merged}/proc\n"
            f"mount -t devpts -o newinstance,ptmxmode=0666 devpts {merged}/dev/pts\n"
            f"mount -t tmpfs -o mode=0755 tmpfs {merged}/run\n"
            f"mount -t tmpfs -o mode=1777 tmpfs {merged}/tmp\n"
            "ip link set lo up\n"
            f'exec chroot {merged} "$@"\n'
        )
        return subprocess.run(
            [
                *("unshare", "--mount", "--net", "--pid", "--fork", "--kill-child"),
                *("--propagation", "private", "sh", "-c", setup, "sh", *command),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={
                "PATH": DEBIAN_PATH,
                "DEBIAN_FRONTEND": "noninteractive",
                "LANG": "C.UTF-8",
                "HOME": "/root",
            },
        )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failed run, for an assertion message."""
    command = shlex.join(str(arg) for arg in result.args)
    return f"{command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


def bumped_source(repo_files: Path, version: str) -> None:
    """Prepend a changelog entry: the same tree, packaged as a newer version."""
    changelog = repo_files / "debian" / "changelog"
    entry = (
        f"nullmx-milter ({version}) unstable; urgency=medium\n\n"
        "  * Upgrade test build.\n\n"
        " -- nullmx-milter developers <nullmx-milter@example.org>"
        "  Tue, 01 Dec 2026 12:00:00 +0000\n\n"
    )
    changelog.write_text(entry + changelog.read_text())


def tracked_copy(repo: Path, target: Path) -> Path:
    """Tracked and new (not ignored) files of the work tree: what scripts/build-deb packages."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, files):
        name = os.fsdecode(raw)
        source = repo / name
        if not source.exists() and not source.is_symlink():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            (target / name).symlink_to(source.readlink())
        else:
            shutil.copy2(source, target / name)
    return target
