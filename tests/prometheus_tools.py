"""Prometheus' own tools for tests: promtool, a real server, and metric names in PromQL."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knot import free_port

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
RULES = CONFIG_DIR / "prometheus" / "nullmx-milter.rules.yml"
RULES_TEST = CONFIG_DIR / "prometheus" / "nullmx-milter.rules.test.yml"
DASHBOARD = CONFIG_DIR / "grafana" / "nullmx-milter-dashboard.json"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_TOKEN = re.compile(r"(?<![\w.$])[a-zA-Z_:][\w:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: functions, keywords, label names,
    matchers, ranges and durations are left out."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def exposed_names(exposition: str) -> set[str]:
    """The sample names in Prometheus exposition text (histogram suffixes included)."""
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


class PrometheusServer:
    """A real Prometheus on 127.0.0.1 with a private config and storage, scraping targets."""

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[str],
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "1s",
    ) -> None:
        self.workdir = workdir
        self.port = free_port(socket.SOCK_STREAM)
        self.config_path = workdir / "prometheus.yml"
        rules = "".join(f"  - {path}\n" for path in rule_files)
        listed = ", ".join(f"'{target}'" for target in targets)
        self.config_path.write_text(
            f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: 1s\n"
            + (f"rule_files:\n{rules}" if rules else "")
            + "scrape_configs:\n  - job_name: nullmx-milter\n"
            + f"    static_configs:\n      - targets: [{listed}]\n"
        )
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> PrometheusServer:
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus did not get ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a /api/v1 answer."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=5) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> dict[str, float]:
        """An instant query, as {label text: value}."""
        result = self.api("query", query=expr)["result"]
        return {
            ",".join(f"{key}={value}" for key, value in sorted(series["metric"].items())): float(
                series["value"][1]
            )
            for series in result
        }

    def wait_for_value(self, expr: str, expected: float, timeout: float = 15.0) -> float:
        """Poll an instant query that yields one series until it equals `expected`."""
        deadline = time.monotonic() + timeout
        values: list[float] = []
        while time.monotonic() < deadline:
            values = list(self.query(expr).values())
            if values == [expected]:
                return expected
            time.sleep(0.2)
        raise AssertionError(f"{expr} = {values}, expected {expected} within {timeout}s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
