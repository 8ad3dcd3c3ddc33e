"""/metrics, /status and /healthz on the metrics listener, and `nullmx-milter status`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from http_page import fetch
from nullmx_milter import cli
from nullmx_milter.http_server import MetricsServer
from nullmx_milter.metrics import Metrics, runtime_versions
from nullmx_milter.status_client import normalise_url, status_url
from nullmx_milter.status_report import StatusReport

HEALTHY = StatusReport(
    None,
    ("nullmx-milter 1.0.0: ok", "uptime: 1.0 s", "end of status"),
    {"status": "ok", "problem": None, "uptime_seconds": 1.0},
)
FAILING = StatusReport(
    "DNS failing fast: 5 lookups in a row timed out",
    ("nullmx-milter 1.0.0: UNHEALTHY: DNS failing fast", "end of status"),
    {"status": "unhealthy", "problem": "DNS failing fast: 5 lookups in a row timed out"},
)


class Listener:
    """One MetricsServer per module (each stop waits out a poll); tests swap its report."""

    def __init__(self, with_status: bool = True) -> None:
        registry = CollectorRegistry()
        Metrics(registry, runtime_versions("1.0.5", "1.0.1"))
        self.report: Callable[[], StatusReport] = lambda: HEALTHY
        self.server = MetricsServer("127.0.0.1", registry, self._report if with_status else None)
        self.server.start()
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"

    def _report(self) -> StatusReport:
        return self.report()


@pytest.fixture(scope="module")
def listeners() -> Iterator[tuple[Listener, Listener]]:
    pair = Listener(), Listener(with_status=False)
    yield pair
    for listener in pair:
        listener.server.stop()


@pytest.fixture
def listener(listeners: tuple[Listener, Listener]) -> Listener:
    listeners[0].report = lambda: HEALTHY
    return listeners[0]


def get(port: int, path: str, accept: str = "") -> tuple[int, str, str]:
    """(status, content type, body), also for error statuses."""
    page = fetch(f"http://127.0.0.1:{port}{path}", accept)
    return page.status, page.content_type, page.body


def test_healthy_status_and_healthz(listener: Listener) -> None:
    port = listener.port
    assert get(port, "/status") == (200, "text/plain; charset=utf-8", HEALTHY.text())
    assert get(port, "/healthz")[::2] == (200, "ok\n")
    status, _type, body = get(port, "/metrics")
    assert status == 200
    assert 'nullmx_replies_total{code="556",enhanced="5.1.10"} 0.0' in body


def test_failing_status_is_503_with_the_same_report(listener: Listener) -> None:
    listener.report = lambda: FAILING
    port = listener.port
    assert get(port, "/status")[::2] == (503, FAILING.text())
    assert get(port, "/healthz")[::2] == (503, "DNS failing fast: 5 lookups in a row timed out\n")


def test_broken_report_does_not_break_metrics(listener: Listener) -> None:
    def broken() -> StatusReport:
        raise RuntimeError("bug")

    listener.report = broken
    port = listener.port
    assert get(port, "/status")[0] == 500
    assert get(port, "/healthz")[0] == 500
    assert get(port, "/metrics")[0] == 200


def test_unknown_paths_and_no_provider_are_404(listeners: tuple[Listener, Listener]) -> None:
    assert get(listeners[0].port, "/nope")[0] == 404
    assert get(listeners[1].port, "/status")[0] == 404


def test_status_command_prints_report_and_exits_by_health(
    listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--url", f"{listener.url}/"]) == 0
    assert capsys.readouterr().out == HEALTHY.text()
    listener.report = lambda: FAILING
    assert cli.main(["status", "--url", f"{listener.url}/status"]) == 1
    assert capsys.readouterr().out.splitlines()[0].startswith("211-nullmx-milter 1.0.0: UNHEALTHY")


def test_status_command_finds_the_daemon_by_config(
    listener: Listener, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = listener.port
    config = tmp_path / "milter.toml"
    config.write_text(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    assert cli.main(["status", "--config", str(config)]) == 0
    assert capsys.readouterr().out == HEALTHY.text()
    config.write_text('[metrics]\nlisten = ""\n')
    assert cli.main(["status", "--config", str(config)]) == 2
    assert "metrics.listen is off" in capsys.readouterr().err


def test_status_command_when_the_daemon_serves_no_status(
    listeners: tuple[Listener, Listener], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--url", listeners[1].url]) == 3
    assert "HTTP 404" in capsys.readouterr().out


def test_status_command_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 (tcpmux) is privileged and nothing on this host serves it.
    assert cli.main(["status", "--url", "http://127.0.0.1:1/"]) == 3
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(
        "421 nullmx-milter status: cannot reach the daemon at http://127.0.0.1:1/"
    )


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        pytest.param("127.0.0.1:9466", "http://127.0.0.1:9466/status", id="v4"),
        pytest.param("0.0.0.0:9466", "http://127.0.0.1:9466/status", id="v4-wildcard"),
        pytest.param("[::1]:9466", "http://[::1]:9466/status", id="v6"),
        pytest.param("[::]:9466", "http://[::1]:9466/status", id="v6-wildcard"),
    ],
)
def test_status_url_from_listen(listen: str, url: str) -> None:
    assert status_url(listen) == url


def test_only_http_urls_are_fetched() -> None:
    assert normalise_url("http://h:1") == "http://h:1/status"
    assert normalise_url("https://h:1/x/status") == "https://h:1/x/status"
    with pytest.raises(ValueError, match="not an http"):
        normalise_url("file:///etc/passwd")


@pytest.mark.parametrize(
    ("accept", "is_json"),
    [
        pytest.param("application/json", True, id="json"),
        pytest.param("application/json; q=1.0, text/plain", True, id="json-first"),
        pytest.param("text/plain, application/json", False, id="text-first"),
        pytest.param("*/*", False, id="anything-is-text"),
        pytest.param("", False, id="no-accept"),
    ],
)
def test_status_as_json_on_request(listener: Listener, accept: str, is_json: bool) -> None:
    status, content_type, body = get(listener.port, "/status", accept)
    assert status == 200
    if is_json:
        assert content_type == "application/json"
        assert json.loads(body) == HEALTHY.document
    else:
        assert (content_type, body) == ("text/plain; charset=utf-8", HEALTHY.text())


def test_failing_json_status_is_503(listener: Listener) -> None:
    listener.report = lambda: FAILING
    status, _type, body = get(listener.port, "/status", "application/json")
    assert (status, json.loads(body)) == (503, FAILING.document)


def test_status_command_json(listener: Listener, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--json", "--url", listener.url]) == 0
    assert json.loads(capsys.readouterr().out) == HEALTHY.document
    listener.report = lambda: FAILING
    assert cli.main(["status", "--json", "--url", listener.url]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "unhealthy"
    assert cli.main(["status", "--json", "--url", "http://127.0.0.1:1/"]) == 3
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "unreachable"
    assert answer["problem"].startswith("cannot reach the daemon at http://127.0.0.1:1/")
