"""Smoke tests of the installed `nullmx-milter` console script."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nullmx_milter import __version__

from daemon_process import CONSOLE_SCRIPT
from knot import KnotServer, free_port


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONSOLE_SCRIPT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"nullmx-milter {__version__}"


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[dns]\ntimeout = -1\n")
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "dns.timeout: must be > 0" in result.stderr


def test_check_config_accepts_the_sample() -> None:
    sample = Path(__file__).resolve().parent.parent / "config" / "nullmx-milter.toml"
    result = run("check-config", "--config", str(sample))
    assert result.returncode == 0
    assert result.stdout.startswith("config OK")


@pytest.mark.integration
def test_check_diagnoses_each_address(knot: KnotServer, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[dns]\nnameservers = ["{knot.nameserver}"]\n')
    result = run("check", "--config", str(config), "<a@null.test>", "b@real.test", "<>")
    assert result.returncode == 0
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == 3
    assert "class:    null_mx" in blocks[0]
    assert "reply:    556-5.1.10 <a@null.test>: Recipient address rejected" in blocks[0]
    assert "          556 5.1.10 Check the address" in blocks[0]
    assert "dns:      10 mx.real.test." in blocks[1]
    assert "reply:    continue" in blocks[1]
    assert "verdict:  skipped (null_path)" in blocks[2]


def run_as(euid: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process that sees `euid` as its effective user id, so the root
    check is exercised the same way whoever runs the tests."""
    code = (
        f"import os, sys; os.geteuid = lambda: {euid}; from nullmx_milter.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )


def unusable_config(tmp_path: Path) -> Path:
    """A config on free ports whose policy socket cannot be opened: a daemon that gets past
    the root check exits at once instead of serving (never on the default ports)."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[milter]\nsocket = "inet:{free_port(socket.SOCK_STREAM)}@127.0.0.1"\n'
        '[metrics]\nlisten = ""\n'
        f'[policy_service]\nlisten = "unix:{tmp_path}/missing/dir/policy.sock"\n'
    )
    return config


def test_run_refuses_root_without_allow_root(tmp_path: Path) -> None:
    result = run_as(0, "run", "--config", str(unusable_config(tmp_path)))
    assert result.returncode == 2
    assert "refusing to run as root" in result.stderr


@pytest.mark.parametrize(
    ("euid", "args"),
    [pytest.param(0, ["--allow-root"], id="root-allowed"), pytest.param(1000, [], id="not-root")],
)
def test_run_starts_when_not_refused(tmp_path: Path, euid: int, args: list[str]) -> None:
    result = run_as(euid, "run", *args, "--config", str(unusable_config(tmp_path)))
    assert "refusing to run as root" not in result.stderr
    # It got as far as opening its sockets.
    assert result.returncode == 1
    assert "cannot serve the policy service on unix:" in result.stderr


def test_run_names_a_policy_socket_it_cannot_open(tmp_path: Path) -> None:
    result = run("run", "--allow-root", "--config", str(unusable_config(tmp_path)))
    assert result.returncode == 1
    assert "cannot serve the policy service on unix:" in result.stderr


@pytest.mark.integration
def test_check_shows_the_suggestion(knot: KnotServer, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[dns]\nnameservers = ["{knot.nameserver}"]\n')
    result = run("check", "--config", str(config), "jane@gmial.com", "a@null.test")
    assert result.returncode == 0
    gmial, null = result.stdout.split("\n\n")
    assert "suggest:  jane@gmail.com (1 edit)" in gmial
    assert "          556-5.1.10 Did you mean <jane@gmail.com>?" in gmial
    assert "suggest:  none (none)" in null


@pytest.mark.parametrize("busy", ["milter", "metrics"])
def test_run_names_a_busy_port(tmp_path: Path, busy: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        free = free_port(socket.SOCK_STREAM)
        milter_port, metrics_port = (port, free) if busy == "milter" else (free, port)
        config = tmp_path / "c.toml"
        config.write_text(
            f'[milter]\nsocket = "inet:{milter_port}@127.0.0.1"\n'
            f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
        )
        result = run("run", "--allow-root", "--config", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    expected = {
        "milter": f"cannot serve on inet:{port}@127.0.0.1",
        "metrics": f"cannot serve metrics on metrics.listen = 127.0.0.1:{port}: ",
    }[busy]
    assert expected in result.stderr
