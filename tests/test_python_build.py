"""The sdist and wheel build without a single warning, with Debian 12's setuptools (the .deb
build) and with the newest setuptools on the package index (`pip install .`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from systemd_unit import REPO

pytestmark = pytest.mark.packaging

DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# setuptools 77 deprecated `project.license` as a table; an older one cannot say so.
FIRST_SETUPTOOLS_WITH_LICENSE_DEPRECATION = (77, 0)


def source_copy(tmp_path: Path) -> Path:
    """Tracked and new files only, so that no build directory or egg-info of the work tree
    hides or causes a warning."""
    source = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        target = source / os.fsdecode(name)
        if (REPO / os.fsdecode(name)).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / os.fsdecode(name), target)
    return source


def build_output(python: str, tmp_path: Path) -> str:
    """Build sdist and wheel from a copy of the tree with `python -m build --no-isolation`
    (as Debian's pybuild does) and return everything the build printed."""
    source = source_copy(tmp_path)
    env = {"PATH": DEBIAN_PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [python, "-W", "default", "-m", "build", "--no-isolation", "--outdir", "dist", "."],
        cwd=source,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert len(list((source / "dist").glob("*.whl"))) == 1, output
    (sdist,) = (source / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    guides = {f"docs/{guide.name}" for guide in (REPO / "docs").glob("*.md")}
    assert {"docs/nullmx-milter.8", "docs/nullmx-milter.toml.5", *guides} <= names
    return output


def setuptools_version(python: str) -> tuple[int, ...]:
    version = subprocess.run(
        [python, "-c", "import setuptools; print(setuptools.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return tuple(int(part) for part in version.split(".")[:2])


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"\bwarn|\bdeprecat", line, re.I)]


def test_build_is_warning_free_with_debians_setuptools(tmp_path: Path) -> None:
    python = "/usr/bin/python3"
    version = setuptools_version(python)
    print(f"Debian setuptools {version}")
    assert version < FIRST_SETUPTOOLS_WITH_LICENSE_DEPRECATION
    assert warnings_in(build_output(python, tmp_path)) == []


def test_build_is_warning_free_with_the_newest_setuptools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--upgrade", "setuptools", "wheel", "build"],
        capture_output=True,
        check=True,
    )
    version = setuptools_version(python)
    print(f"newest setuptools {version}")
    assert version >= FIRST_SETUPTOOLS_WITH_LICENSE_DEPRECATION
    assert warnings_in(build_output(python, tmp_path)) == []
