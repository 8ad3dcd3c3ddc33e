"""The Debian package installed on a bare Debian 12: Debian's autopkgtest (debian/tests) with
its `null` runner, and an install -> edit -> upgrade -> purge cycle (tests/debian_chroot.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from debian_chroot import Sandbox, base_root, bumped_source, describe, tracked_copy
from systemd_unit import REPO

pytestmark = pytest.mark.packaging

NEXT_VERSION_SUFFIX = "+upgradetest1"
DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Builds:
    # The tree version N was built from, in place: autopkgtest takes a tree with
    # debian/files as built and installs the .deb it is given for "@" instead of building
    # the source first (which would need dpkg-dev in the bare system).
    source: Path
    old: Path  # version N
    new: Path  # version N+1: the same tree, a bumped changelog


def build(source: Path, out: Path) -> Path:
    subprocess.run(
        ["dpkg-buildpackage", "-b", "-us", "-uc", "--no-sign"],
        cwd=source,
        capture_output=True,
        check=True,
        env={"PATH": DEBIAN_PATH, "HOME": str(out), "LANG": "C.UTF-8"},
    )
    (deb,) = source.parent.glob("nullmx-milter_*_all.deb")
    return Path(shutil.move(deb, out / deb.name))


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    work = tmp_path_factory.mktemp("debian-builds")
    (work / "old").mkdir()
    (work / "new").mkdir()
    old_tree = tracked_copy(REPO, work / "old" / "src")
    new_tree = tracked_copy(REPO, work / "new" / "src")
    version = (REPO / "debian" / "changelog").read_text().split("(", 1)[1].split(")", 1)[0]
    bumped_source(new_tree, version + NEXT_VERSION_SUFFIX)
    return Builds(
        source=old_tree,
        old=build(old_tree, work / "old"),
        new=build(new_tree, work / "new"),
    )


@pytest.fixture(scope="module")
def debian_base() -> Path:
    return base_root()


@pytest.fixture
def sandbox(debian_base: Path, tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(debian_base, tmp_path / "system")
    yield box
    shutil.rmtree(box.work, ignore_errors=True)


# The first test also builds both packages and, on a fresh machine, the Debian root (~3 min).
@pytest.mark.timeout(900)
def test_autopkgtest_passes_with_the_package_installed_on_a_bare_debian(
    builds: Builds, sandbox: Sandbox
) -> None:
    deb = sandbox.put(f"/srv/test/{builds.old.name}", builds.old)
    source = sandbox.put("/srv/test/source", builds.source)
    began = time.monotonic()
    result = sandbox.run(
        ["autopkgtest", "--no-built-binaries", deb, source + "/", "--", "null"], timeout=600
    )
    took = time.monotonic() - began
    lines = [line for line in result.stdout.splitlines() if "milter-rejects-null-mx" in line]
    print(f"autopkgtest -- null: exit {result.returncode} in {took:.1f}s")
    print("\n".join(lines))
    assert result.returncode == 0, describe(result)
    assert any(line.split()[-1:] == ["PASS"] for line in lines), describe(result)
    assert any("-> y 556" in line and "5.1.10" in line for line in lines), describe(result)
    assert any("nullmx-milter status: exit 0, 211" in line for line in lines), describe(result)


def run_upgrade_cycle(builds: Builds, sandbox: Sandbox) -> dict[str, Any]:
    driver = sandbox.put("/srv/test/driver.py", REPO / "tests" / "debian_upgrade_driver.py")
    old = sandbox.put(f"/srv/test/{builds.old.name}", builds.old)
    new = sandbox.put(f"/srv/test/{builds.new.name}", builds.new)
    result = sandbox.run(["python3", driver, "scenario", old, new], timeout=600)
    assert result.returncode == 0, describe(result)
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert "failed" not in report, report.get("failed")
    return report


@pytest.mark.timeout(900)
def test_upgrade_keeps_the_admins_edit_and_purge_leaves_nothing_behind(
    builds: Builds, sandbox: Sandbox
) -> None:
    began = time.monotonic()
    report = run_upgrade_cycle(builds, sandbox)
    print(f"install, upgrade, purge: {time.monotonic() - began:.1f}s")
    installed, upgraded, purged = report["installed"], report["upgraded"], report["purged"]
    context = json.dumps({**report, "log": "\n".join(report["log"])}, indent=1)
    for step in ("installed", "upgraded", "purged"):
        print(f"{step}: {report[step]['package'] or '-'}; socket {report[step]['socket']}")
    print("systemd was asked:", "; ".join(purged["calls"]))

    # Installed: enabled and started; the socket unit neither.
    assert installed["package"].endswith(" ii"), context
    assert "deb-systemd-invoke start nullmx-milter.service" in installed["calls"], context
    assert not [call for call in installed["calls"] if "nullmx-milter.socket" in call], context
    assert installed["daemon_running"], context
    assert installed["socket"] is not None and installed["socket"].endswith(" 660"), context

    # Upgraded: the edit survives, untouched, no .dpkg-* copies; the service restarted.
    assert upgraded["package"].split()[0].endswith(NEXT_VERSION_SUFFIX), context
    assert 'nameservers = ["127.0.0.1"]  # edited by the admin' in upgraded["config"], context
    assert upgraded["config"].count("nameservers") == installed["config"].count("nameservers")
    assert upgraded["conffile_leftovers"] == [], context
    new_calls = upgraded["calls"][len(installed["calls"]) :]
    assert "deb-systemd-invoke restart nullmx-milter.service" in new_calls, context
    # An admin's socket unit keeps listening through the upgrade, or the restart would lose it.
    assert not [call for call in new_calls if "nullmx-milter.socket" in call], context
    assert upgraded["daemon_running"], context
    assert upgraded["daemon_pid"] != installed["daemon_pid"], context

    # Purged: stopped, config and socket directory gone, no process left; the user stays.
    purge_calls = purged["calls"][len(upgraded["calls"]) :]
    assert "deb-systemd-invoke stop nullmx-milter.service" in purge_calls, context
    assert purged["package"] in ("", "pn"), context
    assert not purged["config_dir"], context
    assert not purged["socket_dir"], context
    assert purged["processes"] == [], context
    assert purged["user"], context
