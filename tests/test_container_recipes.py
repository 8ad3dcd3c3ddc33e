"""The compose and Kubernetes recipes (container/) agree with the images they run: the
configs parse in the images themselves, names and ports match, Prometheus' config checks."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from container_run import REPO, build_image, podman_status

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

CONTAINER = REPO / "container"
IMAGE_CONFIG = tomllib.loads((CONTAINER / "nullmx-milter.toml").read_text())


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CONTAINER / "compose.yaml").read_text())
    return loaded


def kubernetes() -> dict[str, dict[str, Any]]:
    """The manifest's documents by kind and name ("ConfigMap/nullmx-milter")."""
    documents = yaml.safe_load_all((CONTAINER / "kubernetes.yaml").read_text())
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in documents}


def pod_containers() -> dict[str, dict[str, Any]]:
    spec = kubernetes()["Deployment/nullmx-mail"]["spec"]["template"]["spec"]
    return {container["name"]: container for container in spec["containers"]}


def postfix_settings(main_cf: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in main_cf.splitlines() if re.match(r"^\w+\s*=", line))
    return {name.strip(): value.strip() for name, value in pairs}


def run_in(image: str, script: str, *options: str) -> tuple[int, str]:
    return podman_status(
        "run", "--rm", "--network=none", "--entrypoint=/bin/sh", *options, image, "-c", script
    )


@pytest.mark.parametrize(
    "main_cf",
    [
        pytest.param(CONTAINER / "compose" / "main.cf", id="compose"),
        pytest.param(None, id="kubernetes"),
    ],
)
def test_postfix_main_cf_is_clean_in_the_postfix_image(
    main_cf: Path | None, tmp_path: Path
) -> None:
    if main_cf is None:
        main_cf = tmp_path / "main.cf"
        main_cf.write_text(kubernetes()["ConfigMap/nullmx-postfix"]["data"]["main.cf"])
    main_cf.chmod(0o644)
    status, output = run_in(
        build_image("postfix"),
        "cp /etc/postfix/pod/main.cf /etc/postfix/main.cf && postfix check && postconf -n",
        f"--volume={main_cf}:/etc/postfix/pod/main.cf:ro",
    )
    # postconf warns about misspelt or unused parameters; postfix check about the rest.
    assert (status, [line for line in output.splitlines() if "warning" in line]) == (0, [])
    assert "smtpd_milters = " in output


def test_compose_wires_postfix_and_prometheus_to_the_milter() -> None:
    services = compose()["services"]
    assert services["nullmx-milter"]["image"] == "localhost/nullmx-milter:latest"
    assert services["postfix"]["image"] == "localhost/nullmx-postfix:latest"
    milter_port = IMAGE_CONFIG["milter"]["socket"].removeprefix("inet:").split("@")[0]
    metrics_port = IMAGE_CONFIG["metrics"]["listen"].rsplit(":", 1)[1]
    settings = postfix_settings((CONTAINER / "compose" / "main.cf").read_text())
    assert settings["smtpd_milters"] == f"inet:nullmx-milter:{milter_port}"
    assert settings["milter_default_action"] == "tempfail"
    prometheus = yaml.safe_load((CONTAINER / "compose" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"] == [{"targets": [f"nullmx-milter:{metrics_port}"]}]
    for service in services.values():
        for volume in service.get("volumes", []):
            assert (CONTAINER / volume.split(":")[0]).exists(), volume


def test_compose_prometheus_config_and_rules_check(tmp_path: Path) -> None:
    """promtool on the compose Prometheus config, its rule file where the mount puts it."""
    mounts = dict(
        volume.split(":")[1::-1] for volume in compose()["services"]["prometheus"]["volumes"]
    )
    text = (CONTAINER / "compose" / "prometheus.yml").read_text()
    for inside, outside in mounts.items():
        text = text.replace(inside, str((CONTAINER / outside).resolve()))
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    result = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = (REPO / "config" / "prometheus" / "nullmx-milter.rules.yml").read_text()
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert f"SUCCESS: {alerts.count('- alert:')} rules found" in result.stdout


def test_kubernetes_milter_config_parses_in_the_image_and_probes_match(tmp_path: Path) -> None:
    config = tmp_path / "nullmx-milter"
    config.mkdir(mode=0o755)
    config.chmod(0o755)
    text = kubernetes()["ConfigMap/nullmx-milter"]["data"]["nullmx-milter.toml"]
    (config / "nullmx-milter.toml").write_text(text)
    (config / "nullmx-milter.toml").chmod(0o644)
    image = build_image("milter")
    status, output = run_in(
        image,
        "nullmx-milter check-config --config /etc/nullmx-milter/nullmx-milter.toml",
        f"--volume={config}:/etc/nullmx-milter:ro",
    )
    assert (status, output.splitlines()[0]) == (0, "config OK")
    settings = tomllib.loads(text)
    milter = pod_containers()["nullmx-milter"]
    metrics_port = int(settings["metrics"]["listen"].rsplit(":", 1)[1])
    assert milter["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": metrics_port}
    assert milter["livenessProbe"]["httpGet"]["port"] == metrics_port
    # The socket lives in the volume mounted in both containers; Postfix names it relative
    # to its queue directory.
    socket_dir = settings["milter"]["socket"].removeprefix("unix:").rsplit("/", 1)[0]
    mounts = {m["name"]: m["mountPath"] for m in milter["volumeMounts"]}
    postfix_mounts = {
        m["name"]: m["mountPath"] for m in pod_containers()["postfix"]["volumeMounts"]
    }
    assert mounts["milter-socket"] == socket_dir
    main_cf = postfix_settings(kubernetes()["ConfigMap/nullmx-postfix"]["data"]["main.cf"])
    relative = main_cf["smtpd_milters"].removeprefix("unix:")
    socket_name = settings["milter"]["socket"].rsplit("/", 1)[1]
    assert f"/var/spool/postfix/{relative}" == f"{postfix_mounts['milter-socket']}/{socket_name}"
    user = podman_status("image", "inspect", "--format", "{{.Config.User}}", image)[1].strip()
    context = milter["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"
