"""Both service images: built with scripts/build-images.sh against the local base image, then run
together in one podman pod published on 127.0.0.1 only.  The pod is removed even when a test fails."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import canarylab_contract as contract
from canarylab.procs import free_port, wait_http_ok

pytestmark = pytest.mark.image

NON_ROOT_UID = "10001"
MODEL = "model-service"
APP = "app"
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Podman:
    env: dict[str, str]

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self(kind, "inspect", name).stdout)
        return data[0]


@dataclass(frozen=True)
class Pod:
    name: str
    model_url: str
    app_url: str
    model_metrics_url: str

    def container(self, which: str) -> str:
        return f"{self.name}-{which}"


@pytest.fixture(scope="module")
def podman(root: Path) -> Podman:
    return Podman({**os.environ, "CONTAINERS_CONF": str(root / "containers/containers.conf")})


def build(root: Path, podman: Podman, base_image: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts/build-images.sh"), "--base-image", base_image],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


@pytest.fixture(scope="module")
def images(root: Path, podman: Podman, base_image: str) -> dict[str, str]:
    """Both images, built once (and not at all when the sources did not change since the last run)."""
    result = build(root, podman, base_image)
    assert result.returncode == 0, f"build-images.sh failed:\n{result.stderr[-4000:]}"
    names = result.stdout.split()
    assert [n.rsplit(":", 1)[0] for n in names] == [
        f"localhost/canarylab/{MODEL}",
        f"localhost/canarylab/{APP}",
    ]
    return dict(zip((MODEL, APP), names, strict=True))


@pytest.fixture(scope="module")
def pod(podman: Podman, images: dict[str, str]) -> Iterator[Pod]:
    """A pod with both containers: the app reaches the model-service on the pod's loopback."""
    name = f"canarylab-imgtest-{uuid.uuid4().hex[:8]}"
    model_port, metrics_port, app_port = free_port(), free_port(), free_port()
    pod = Pod(
        name,
        f"http://127.0.0.1:{model_port}",
        f"http://127.0.0.1:{app_port}",
        f"http://127.0.0.1:{metrics_port}",
    )
    try:
        podman(
            "pod", "create", "--name", name,
            "--publish", f"127.0.0.1:{model_port}:{contract.MODEL_SERVICE_PORT}",
            "--publish", f"127.0.0.1:{metrics_port}:{contract.MODEL_SERVICE_METRICS_PORT}",
            "--publish", f"127.0.0.1:{app_port}:{contract.APP_PORT}",
        )  # fmt: skip
        podman(
            "run", "--detach", "--pod", name, "--name", pod.container(MODEL),
            "--env", f"MODEL_SERVICE_VARIANT={contract.CANARY}",
            "--env", "MODEL_SERVICE_THREADS=4",
            images[MODEL],
        )  # fmt: skip
        podman(
            "run", "--detach", "--pod", name, "--name", pod.container(APP),
            "--env", f"APP_MODEL_SERVICE_URL=http://127.0.0.1:{contract.MODEL_SERVICE_PORT}",
            "--env", f"APP_VARIANT={contract.CANARY}",
            images[APP],
        )  # fmt: skip
        for url, which in ((pod.model_url, MODEL), (pod.app_url, APP)):
            try:
                wait_http_ok(url + contract.READY_PATH, timeout=120)
            except Exception as err:
                logs = podman("logs", pod.container(which), check=False)
                raise AssertionError(
                    f"{which} container not ready: {err}\n{logs.stdout}{logs.stderr}"
                ) from err
        yield pod
    finally:
        podman("pod", "rm", "--force", "--time", "5", name, check=False)


def test_model_service_container_serves_metrics_on_the_metrics_port(pod: Pod) -> None:
    resp = requests.get(pod.model_metrics_url + contract.METRICS_PATH, timeout=30)
    assert resp.status_code == 200, resp.text
    assert f'{contract.MODEL_THREADS}{{variant="{contract.CANARY}"}} 4.0' in resp.text


def test_model_service_container_predicts(pod: Pod) -> None:
    resp = requests.post(
        pod.model_url + contract.PREDICT_PATH, json={"review": "Delicious food!"}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) >= {"sentiment", "confidence", "variant", "model_version"}
    assert resp.json()["variant"] == contract.CANARY
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY


def test_app_container_answers_through_the_model_service(pod: Pod) -> None:
    resp = requests.post(
        pod.app_url + contract.APP_API_PATH,
        json={"review": "Cold soup and a rude waiter."},
        headers={contract.VARIANT_HEADER: contract.CANARY},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["variant"] == contract.CANARY
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
    page = requests.get(pod.app_url + "/", timeout=30)
    assert page.status_code == 200
    assert 'id="review-form"' in page.text
    metrics = requests.get(pod.app_url + contract.METRICS_PATH, timeout=30).text
    assert f'{contract.APP_MODEL_RESPONSE_SECONDS}_count{{variant="{contract.CANARY}"}}' in metrics


@pytest.mark.parametrize("which", [MODEL, APP])
def test_runs_as_a_fixed_non_root_user(podman: Podman, images: dict[str, str], pod: Pod, which: str) -> None:
    assert podman.inspect("image", images[which])["Config"]["User"] == NON_ROOT_UID
    assert podman("exec", pod.container(which), "id", "-u").stdout.strip() == NON_ROOT_UID


@pytest.mark.parametrize("which", [MODEL, APP])
def test_healthcheck_is_set_and_becomes_healthy(
    podman: Podman, images: dict[str, str], pod: Pod, which: str
) -> None:
    check = podman.inspect("image", images[which])["Healthcheck"]
    assert check["Test"][0] == "CMD"
    assert "python" in check["Test"][1]
    result = podman("healthcheck", "run", pod.container(which), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert podman.inspect("container", pod.container(which))["State"]["Health"]["Status"] == "healthy"


@pytest.mark.parametrize("which", [MODEL, APP])
def test_final_image_has_no_compiler_pip_or_cache(podman: Podman, pod: Pod, which: str) -> None:
    probe = (
        f"for c in {' '.join(COMPILERS)}; do command -v $c && exit 1; done; "
        "ls /opt/canarylab/venv/bin/pip /root/.cache/pip /tmp/wheels 2>/dev/null && exit 1; exit 0"
    )
    result = podman("exec", pod.container(which), "sh", "-c", probe, check=False)
    assert result.returncode == 0, f"found in the final image:\n{result.stdout}"


def image_file(podman: Podman, image: str, path: str) -> bytes:
    result = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "cat", image, path],
        env=podman.env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def certificates(bundle: bytes) -> dict[bytes, bytes]:
    """The certificates of a PEM bundle: base64 body -> a line of it distinctive enough to grep for."""
    found = {}
    for part in bundle.split(b"-----BEGIN CERTIFICATE-----")[1:]:
        body = part.split(b"-----END CERTIFICATE-----")[0].strip()
        lines = body.splitlines()
        found[body] = lines[len(lines) // 2]
    return found


@pytest.mark.parametrize("which", [MODEL, APP])
def test_host_ca_bundle_is_not_baked_in(
    podman: Podman, images: dict[str, str], base_image: str, which: str
) -> None:
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    base_bundle = image_file(podman, base_image, bundle)
    assert image_file(podman, images[which], bundle) == base_bundle, (
        "the CA bundle is not the base image's own"
    )
    env = podman.inspect("image", images[which])["Config"]["Env"]
    assert not [e for e in env if e.split("=", 1)[0] in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    if not HOST_CA_BUNDLE.exists():
        return
    # CAs only the host trusts (a TLS-inspecting proxy's, here) must be nowhere in the image.
    host_only = certificates(HOST_CA_BUNDLE.read_bytes()).keys() - certificates(base_bundle).keys()
    host_lines = certificates(HOST_CA_BUNDLE.read_bytes())
    patterns = b"\n".join(host_lines[body] for body in host_only)
    if not patterns:
        return
    result = subprocess.run(
        ["podman", "run", "--rm", "-i", "--user", "0", "--entrypoint", "grep", images[which],
         "-rlsF", "-f", "/dev/stdin", "/opt", "/etc", "/usr/local", "/root", "/tmp", "/home"],
        input=patterns + b"\n",
        env=podman.env,
        capture_output=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1, f"host-only CA found in the image: {result.stdout.decode()}"


@pytest.mark.parametrize(
    ("which", "ports"),
    [(MODEL, [contract.MODEL_SERVICE_PORT, contract.MODEL_SERVICE_METRICS_PORT]), (APP, [contract.APP_PORT])],
)
def test_image_metadata(podman: Podman, images: dict[str, str], which: str, ports: list[int]) -> None:
    info = podman.inspect("image", images[which])
    config = info["Config"]
    assert {f"{port}/tcp" for port in ports} <= set(config["ExposedPorts"])
    assert config["Cmd"] != ["/sbin/init"]
    labels = info["Labels"]
    assert labels["org.opencontainers.image.title"] == f"canarylab-{which}"
    assert labels["org.opencontainers.image.version"] == images[which].rsplit(":", 1)[1]


def test_model_is_baked_into_the_image(podman: Podman, pod: Pod) -> None:
    env = podman.inspect("container", pod.container(MODEL))["Config"]["Env"]
    model_dir = next(e.split("=", 1)[1] for e in env if e.startswith("MODEL_SERVICE_MODEL_DIR="))
    listing = podman("exec", pod.container(MODEL), "ls", model_dir).stdout.split()
    assert "model.joblib" in listing


def test_unchanged_sources_are_not_rebuilt(
    root: Path, podman: Podman, images: dict[str, str], base_image: str
) -> None:
    tag = subprocess.run(
        [str(root / "scripts/build-images.sh"), "--base-image", base_image, "--print-tag"],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert f"{images[APP]}".endswith(f":{tag}"), "services/ changed while the tests ran: run them again"
    result = build(root, podman, base_image)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [images[MODEL], images[APP]]
    assert result.stderr.count("present, not rebuilt") == 2
