"""The container image (container/Containerfile), built from the Debian package and run
with podman: `--network=none`, Knot and the test client inside its network namespace."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from container_run import (
    Container,
    build_image,
    podman,
    podman_status,
    run_container,
    wait_for_exit,
)
from daemon_process import wait_for_port
from exposition import metric
from knot import KnotServer
from milter_client import MilterClient
from netns import entered_namespace

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

MILTER_PORT = 8894
METRICS_PORT = 9466
# Knot inside the container's network namespace, where nothing else listens.
KNOT_PORT = 53
IMAGE_UID = 10894
CONFIG_DIR = "/etc/nullmx-milter"
# What the Kubernetes manifest asks for (container/kubernetes.yaml securityContext).
HARDENING = ("--read-only", "--cap-drop=all", "--security-opt=no-new-privileges")


def container_config(extra: str = "") -> str:
    """The image's own settings (all interfaces of its namespace) with DNS pointed at Knot."""
    return (
        f'[milter]\nsocket = "inet:{MILTER_PORT}@0.0.0.0"\n'
        f'[dns]\nnameservers = ["127.0.0.1:{KNOT_PORT}"]\ntimeout = 1.0\n'
        f'[metrics]\nlisten = "0.0.0.0:{METRICS_PORT}"\n' + extra
    )


@dataclass
class RunningMilter:
    """The milter's container, the config directory mounted into it, and Knot beside it."""

    container: Container
    config: Path
    knot: KnotServer

    def rcpt(self, recipient: str) -> list[str]:
        """One milter session's answer to RCPT TO (its reply lines, or [kind])."""
        with entered_namespace(self.container.netns), MilterClient(MILTER_PORT) as client:
            client.mail("<sender@real.test>")
            answer = client.rcpt(recipient)
        return answer.lines() or [answer.kind]

    def get(self, path: str) -> tuple[int, str]:
        with entered_namespace(self.container.netns):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{METRICS_PORT}{path}", timeout=5
                ) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                with error:
                    return error.code, error.read().decode()


StartMilter = Callable[..., RunningMilter]


@pytest.fixture(scope="module")
def milter_image() -> str:
    return build_image("milter")


@pytest.fixture
def start_milter(milter_image: str, tmp_path: Path) -> Iterator[StartMilter]:
    started: list[RunningMilter] = []

    def start(extra_config: str = "", *options: str) -> RunningMilter:
        config = tmp_path / f"config{len(started)}"
        config.mkdir()
        # The daemon runs as the image's user; the bind mount shows it this directory only.
        config.chmod(0o755)
        (config / "nullmx-milter.toml").write_text(container_config(extra_config))
        (config / "nullmx-milter.toml").chmod(0o644)
        container = run_container(
            f"nullmx-test-{tmp_path.name}-{len(started)}"[:60],
            milter_image,
            *HARDENING,
            f"--volume={config}:{CONFIG_DIR}:ro",
            *options,
        )
        knot = KnotServer(tmp_path / f"knot{len(started)}", port=KNOT_PORT)
        running = RunningMilter(container, config, knot)
        started.append(running)
        with entered_namespace(container.netns):
            knot.start()
            wait_for_port(MILTER_PORT, timeout=60)
            wait_for_port(METRICS_PORT, timeout=60)
        return running

    yield start
    for running in started:
        running.container.remove()
        running.knot.stop()


def test_image_has_no_build_tools_or_caches_and_reports_its_size(milter_image: str) -> None:
    listing = podman(
        "run",
        "--rm",
        "--network=none",
        "--entrypoint=/bin/sh",
        milter_image,
        "-c",
        "for tool in gcc cc make pip pip3 apt-get; do command -v $tool || true; done;"
        " find /var/lib/apt/lists /var/cache/apt -mindepth 1; echo ---;"
        " dpkg-query -W -f '${Package}\\n' nullmx-milter python3-milter libmilter1.0.1;"
        " id -u",
    )
    found, packages = listing.split("---\n")
    # apt-get stays (Debian's slim base has it); compilers, pip and apt's caches do not.
    assert found.split() == ["/usr/bin/apt-get"]
    *installed, uid = packages.split()
    assert sorted(installed) == ["libmilter1.0.1", "nullmx-milter", "python3-milter"]
    assert uid == str(IMAGE_UID)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", milter_image))
    print(f"image {milter_image}: {size / 1e6:.1f} MB")
    assert size < 200e6


def test_null_mx_recipient_gets_556_metrics_and_health_answer(start_milter: StartMilter) -> None:
    milter = start_milter()
    reply = milter.rcpt("<nobody@null.test>")
    assert reply[0].startswith("556-5.1.10 <nobody@null.test>: Recipient address rejected")
    assert reply[-1].startswith("556 5.1.10 ")
    assert milter.rcpt("<friend@real.test>") == ["continue"]
    status, metrics = milter.get("/metrics")
    assert status == 200
    assert metric(metrics, "nullmx_replies_total", code="556", enhanced="5.1.10") == 1
    assert metric(metrics, "nullmx_recipients_total", verdict="accepted") == 1
    assert milter.get("/healthz") == (200, "ok\n")
    # The image's HEALTHCHECK (nullmx-milter status --url .../healthz) run by podman.
    podman("healthcheck", "run", milter.container.name)
    assert "verdict=rejected" in milter.container.logs()


def test_healthcheck_turns_unhealthy_when_dns_fails(start_milter: StartMilter) -> None:
    milter = start_milter()
    assert podman_status("healthcheck", "run", milter.container.name) == (0, "")
    # SERVFAIL for every lookup and no success ever: /healthz answers 503.
    for number in range(5):
        assert milter.rcpt(f"<a@host{number}.broken.test>") == ["continue"]
    status, body = milter.get("/healthz")
    assert (status, body.startswith("DNS failing")) == (503, True)
    status_code, output = podman_status("healthcheck", "run", milter.container.name)
    assert (status_code, output.strip()) == (1, "unhealthy")


def test_daemon_runs_unprivileged(start_milter: StartMilter) -> None:
    milter = start_milter()
    status = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{milter.container.pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == [str(IMAGE_UID)] * 4
    assert status["Gid"].split() == [str(IMAGE_UID)] * 4
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert milter.container.inspect("{{.Config.User}}") == f"{IMAGE_UID}:{IMAGE_UID}"


def test_sigusr1_reloads_the_mounted_config(start_milter: StartMilter) -> None:
    milter = start_milter()
    assert milter.rcpt("<a@null.test>")[0].startswith("556-5.1.10 ")
    # A new file renamed into place, as an editor or a Kubernetes ConfigMap update does.
    replacement = milter.config / "nullmx-milter.toml.new"
    replacement.write_text(container_config('[policy]\nmode = "dry-run"\n'))
    replacement.chmod(0o644)
    replacement.replace(milter.config / "nullmx-milter.toml")
    milter.container.kill("USR1")
    deadline = time.monotonic() + 15
    while milter.rcpt("<b@null.test>") != ["continue"]:
        assert time.monotonic() < deadline, milter.container.logs()
        time.sleep(0.1)
    _, metrics = milter.get("/metrics")
    assert metric(metrics, "nullmx_config_reloads_total", result="success") == 1
    assert metric(metrics, "nullmx_recipients_total", verdict="would_reject") == 1
    assert "reloaded config=/etc/nullmx-milter/nullmx-milter.toml mode=dry-run" in (
        milter.container.logs()
    )


def test_sigterm_stops_the_container_within_a_second(start_milter: StartMilter) -> None:
    milter = start_milter()
    # A session in progress: the stop must not wait for the MTA to hang up.
    with entered_namespace(milter.container.netns), MilterClient(MILTER_PORT) as client:
        client.mail("<sender@real.test>")
        pid = milter.container.pid
        milter.container.kill("TERM")
        seconds = wait_for_exit(pid, timeout=10)
    print(f"SIGTERM to exit: {seconds:.3f} s")
    assert seconds < 1.0
    assert milter.container.inspect("{{.State.ExitCode}}") == "0"
    assert "stopping on SIGTERM" in milter.container.logs()
