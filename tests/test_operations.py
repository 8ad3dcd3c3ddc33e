"""Running it: refusing root, logging to syslog facility mail."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nullmx_milter import cli, daemon
from nullmx_milter.config import Config, LogConfig


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_run_refuses_root_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert cli.main(["run"]) == cli.EXIT_CONFIG
    error = capsys.readouterr().err
    assert "refusing to run as root" in error
    assert "--allow-root" in error


def test_run_does_not_refuse_an_unprivileged_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert daemon.refuse_root(allow_root=False) is None
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert daemon.refuse_root(allow_root=True) is None


def test_syslog_gets_facility_mail(tmp_path: Path, restore_logging: None) -> None:
    address = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(address)
        syslog.settimeout(5)
        daemon.configure_logging(Config(log=LogConfig(syslog=True)), address)
        logging.getLogger("nullmx_milter.engine").info("conn=1 qid=ABC verdict=rejected")
        message = syslog.recv(4096).decode()
    # <PRI> = facility mail (2) * 8 + severity info (6)
    assert message.startswith("<22>nullmx-milter: conn=1 qid=ABC verdict=rejected")
