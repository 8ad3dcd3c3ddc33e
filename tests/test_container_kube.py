"""`podman kube play` on the shipped Kubernetes manifest (container/kubernetes.yaml): Postfix
and nullmx-milter as its sidecar in one pod, a message through Postfix."""

from __future__ import annotations

import os
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from container_run import REPO, Container, build_image, podman
from daemon_process import wait_for_port, wait_for_unix_socket
from knot import KnotServer
from mta_postfix import SmtpSink
from netns import ProcessNamespace

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

MANIFEST = REPO / "container" / "kubernetes.yaml"
SINK_PORT = 2525


def site_manifest(suffix: str, images: dict[str, str]) -> list[dict[str, Any]]:
    """The shipped manifest with what a site changes (docs/containers.md): its
    images, the milter's nameservers, Postfix's next hop, and the pod's resolver, all on the
    pod's loopback, where the test runs Knot and smtp-sink. Every name gets `suffix`."""
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    for document in documents:
        # podman keeps ConfigMaps and volumes as volumes of those names: one set per test run.
        document["metadata"]["name"] = f"{document['metadata']['name']}-{suffix}"
        data = document.get("data", {})
        if "nullmx-milter.toml" in data:
            data["nullmx-milter.toml"] = replace_once(
                data["nullmx-milter.toml"], "nameservers = []", 'nameservers = ["127.0.0.1:53"]'
            )
        if "main.cf" in data:
            data["main.cf"] = replace_once(
                data["main.cf"], "relayhost =\n", f"relayhost = [127.0.0.1]:{SINK_PORT}\n"
            )
        if document["kind"] == "Deployment":
            spec = document["spec"]["template"]["spec"]
            spec["dnsPolicy"] = "None"
            spec["dnsConfig"] = {"nameservers": ["127.0.0.1"]}
            for volume in spec["volumes"]:
                volume["name"] = f"{volume['name']}-{suffix}"
                if "configMap" in volume:
                    volume["configMap"]["name"] = f"{volume['configMap']['name']}-{suffix}"
            for container in spec["containers"]:
                container["image"] = images[container["name"]]
                for mount in container["volumeMounts"]:
                    mount["name"] = f"{mount['name']}-{suffix}"
    return documents


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} not once in {text!r}"
    return text.replace(old, new)


@dataclass
class Pod:
    name: str
    netns: ProcessNamespace
    sink: SmtpSink

    def container(self, name: str) -> Container:
        return Container(f"{self.name}-pod-0-{name}")


@pytest.fixture(scope="module")
def pod() -> Iterator[Pod]:
    images = {"nullmx-milter": build_image("milter"), "postfix": build_image("postfix")}
    workdir = Path(tempfile.mkdtemp(prefix="nullmx-kube-"))
    # smtp-sink runs as postfix and writes below it.
    workdir.chmod(0o755)
    suffix = str(os.getpid())
    name = f"nullmx-mail-{suffix}"
    documents = site_manifest(suffix, images)
    manifest = workdir / "kubernetes.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    knot = KnotServer(workdir / "knot", port=53)
    sink: SmtpSink | None = None
    try:
        podman("kube", "play", "--network=none", str(manifest))
        infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", f"{name}-pod-0")
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", infra.strip()))
        netns = ProcessNamespace(pid)
        with netns.entered():
            knot.start()
        sink = SmtpSink(netns, workdir / "sink", port=SINK_PORT).start()
        running = Pod(name, netns, sink)
        # Generous: podman and the host are shared with other builds and test runs.
        try:
            with netns.entered():
                wait_for_port(25, timeout=60)
            # The milter's socket in the pod's volume, reached through its container's root.
            milter_root = Path(f"/proc/{running.container('nullmx-milter').pid}/root")
            wait_for_unix_socket(milter_root / "run/nullmx-milter/nullmx-milter.sock", 60)
        except (TimeoutError, RuntimeError) as error:
            logs = {side: running.container(side).logs() for side in ("postfix", "nullmx-milter")}
            raise RuntimeError(f"the pod did not come up: {error}; logs: {logs}") from error
        yield running
    finally:
        podman("kube", "down", str(manifest), check=False)
        # The ConfigMaps' volumes outlive the pod.
        configmaps = [doc["metadata"]["name"] for doc in documents if doc["kind"] == "ConfigMap"]
        podman("volume", "rm", "--force", *configmaps, check=False)
        if sink is not None and sink.process is not None:
            sink.process.terminate()
            sink.process.wait(10)
        knot.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_message_through_postfix_gets_556_for_null_mx_and_goes_on_for_the_rest(pod: Pod) -> None:
    with pod.netns.entered(), smtplib.SMTP("127.0.0.1", 25, timeout=30) as smtp:
        refused = smtp.sendmail(
            "sender@real.test",
            ["friend@real.test", "nobody@null.test"],
            "Subject: kube play\r\n\r\nthrough the pod\r\n",
        )
    code, text = refused["nobody@null.test"]
    assert (code, list(refused)) == (556, ["nobody@null.test"])
    assert text.decode().startswith("5.1.10 <nobody@null.test>: Recipient address rejected")
    assert pod.sink.wait_for_recipients(lambda got: "friend@real.test" in got) == [
        "friend@real.test"
    ]
    postfix_log = pod.container("postfix").logs()
    assert "milter-reject: RCPT from" in postfix_log
