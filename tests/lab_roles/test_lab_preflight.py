"""playbooks/experiment-lab-preflight.yml against a stand-in lab on 127.0.0.1.

One small HTTP server plays the Istio gateway (answers as the pinned variant, or
deliberately wrong), Prometheus (/-/ready, /api/v1/targets) and Grafana
(/api/health).  The play's Kubernetes checks (tag `kubernetes`: Deployments
Ready) need a cluster and are skipped here; tests/lab covers them on a live lab.
The target file it writes is read back with the engine's own parser.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

import canarylab_contract as contract
from canarylab.experiment.targets.lab import LabTarget

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "experiment-lab-preflight.yml"
NAMESPACE = "canarylab"


@dataclass
class LabState:
    """What the stand-in answers; tests change it to break one thing at a time."""

    app_answers: dict[str, str] = field(default_factory=lambda: {v: v for v in contract.VARIANTS})
    model_answers: dict[str, str] = field(default_factory=lambda: {v: v for v in contract.VARIANTS})
    target_health: list[str] = field(default_factory=lambda: ["up"] * 4)
    requests: list[str] = field(default_factory=list)
    # Prometheus answers /-/ready with 503 this many times first (still starting).
    prometheus_not_ready: int = 0
    ready_checks: int = 0


def make_handler(state: LabState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            payload = json.loads(self.rfile.read(length) or b"{}")
            pinned = self.headers.get(contract.VARIANT_HEADER, "")
            state.requests.append(pinned)
            valid = self.path == contract.APP_API_PATH and "review" in payload
            if not valid or pinned not in contract.VARIANTS:
                self._send(400, {"error": "bad request"})
                return
            app = state.app_answers[pinned]
            body = {"label": "positive", "score": 0.9, "variant": state.model_answers[pinned]}
            self._send(200, body, {contract.VARIANT_HEADER: app})

        def do_GET(self) -> None:
            if self.path == "/-/ready":
                state.ready_checks += 1
                if state.ready_checks <= state.prometheus_not_ready:
                    self._send(503, {"status": "starting"})
                    return
            if self.path in ("/-/ready", "/api/health"):
                self._send(200, {"status": "ok"})
            elif self.path.startswith("/api/v1/targets"):
                targets = [
                    {"labels": {"namespace": NAMESPACE, "pod": f"pod-{i}"}, "health": h}
                    for i, h in enumerate(state.target_health)
                ]
                targets.append({"labels": {"namespace": "monitoring"}, "health": "down"})
                self._send(200, {"status": "success", "data": {"activeTargets": targets}})
            else:
                self._send(404, {"error": "not found"})

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[LabState, Path]]:
    state = LabState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    endpoints = {
        "namespace": NAMESPACE,
        "release": "canarylab",
        "api_url": base + contract.APP_API_PATH,
        "grafana_url": base,
        "prometheus_url": base,
    }
    (state_dir / "endpoints.yml").write_text(yaml.safe_dump(endpoints))
    try:
        yield state, state_dir
    finally:
        server.shutdown()
        server.server_close()


def deployments(ready: dict[str, int] | None = None) -> dict[str, Any]:
    """What kubernetes.core.k8s_info returns for the release's four Deployments."""
    ready = ready or {}
    resources = []
    for component in ("app", "model-service"):
        for variant in contract.VARIANTS:
            name = f"canarylab-{component}-{variant}"
            status = {"replicas": 1}
            if ready.get(name, 1):
                status["readyReplicas"] = ready.get(name, 1)
            resources.append(
                {
                    "metadata": {
                        "name": name,
                        "labels": {"app.kubernetes.io/component": component, contract.LABEL_VARIANT: variant},
                    },
                    "spec": {"replicas": 1},
                    "status": status,
                }
            )
    return {"resources": resources}


def run_preflight(
    state_dir: Path, fake_deployments: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    inventory = state_dir / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "canarylab_load": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": sys.executable,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    cmd = [
        playbook,
        str(PLAYBOOK),
        "-i",
        str(inventory),
        "--skip-tags",
        "kubernetes" if fake_deployments is None else "kubernetes_api",
        "-e",
        f"@{ROOT / 'inventory' / 'group_vars' / 'all' / 'contract.yml'}",
        "-e",
        json.dumps(
            {
                "canarylab_state_dir": str(state_dir),
                "preflight_retries": 1,
                "preflight_requests_per_variant": 3,
                "preflight_prometheus_wait_seconds": 2,
                "preflight_prometheus_delay": 1,
                **(extra or {}),
            }
        ),
    ]
    if fake_deployments is not None:
        # The k8s_info task is skipped (tag kubernetes_api); its result is given instead.
        cmd += ["-e", json.dumps({"preflight_deployments": fake_deployments})]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)


def test_preflight_passes_and_writes_the_engines_target_file(lab: tuple[LabState, Path]) -> None:
    state, state_dir = lab
    proc = run_preflight(state_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert sorted(set(state.requests)) == sorted(contract.VARIANTS)
    assert len(state.requests) == 3 * len(contract.VARIANTS)
    target = LabTarget.from_file(state_dir / "lab-target.yml")
    endpoints = yaml.safe_load((state_dir / "endpoints.yml").read_text())
    assert target.prometheus_url == endpoints["prometheus_url"]
    assert target.grafana_url == endpoints["grafana_url"]
    assert target.selector == f'namespace="{NAMESPACE}"'
    for variant in contract.VARIANTS:
        ep = target.endpoints[variant]
        assert ep.url == endpoints["api_url"]
        assert ep.headers == {contract.VARIANT_HEADER: variant}
    raw = yaml.safe_load((state_dir / "lab-target.yml").read_text())
    assert raw["kind"] == "lab"


def test_preflight_fails_when_the_gateway_serves_the_wrong_app(lab: tuple[LabState, Path]) -> None:
    state, state_dir = lab
    state.app_answers["canary"] = "stable"
    proc = run_preflight(state_dir)
    assert proc.returncode != 0
    assert "pinned to canary, answered by app stable" in proc.stdout
    assert not (state_dir / "lab-target.yml").exists()


def test_preflight_fails_when_the_model_service_leaves_the_variant(lab: tuple[LabState, Path]) -> None:
    state, state_dir = lab
    state.model_answers["stable"] = "canary"
    proc = run_preflight(state_dir)
    assert proc.returncode != 0
    assert "model-service canary" in proc.stdout
    assert not (state_dir / "lab-target.yml").exists()


def test_preflight_fails_when_a_canarylab_target_is_down(lab: tuple[LabState, Path]) -> None:
    state, state_dir = lab
    state.target_health = ["up", "up", "down", "up"]
    proc = run_preflight(state_dir)
    assert proc.returncode != 0
    assert "Prometheus scrapes every canarylab pod" in proc.stdout
    assert not (state_dir / "lab-target.yml").exists()


def test_preflight_fails_without_the_endpoints_file(lab: tuple[LabState, Path]) -> None:
    _, state_dir = lab
    (state_dir / "endpoints.yml").unlink()
    proc = run_preflight(state_dir)
    assert proc.returncode != 0
    assert "the lab's app is not deployed" in proc.stdout


def test_preflight_checks_the_deployments_are_ready(lab: tuple[LabState, Path]) -> None:
    _, state_dir = lab
    proc = run_preflight(state_dir, deployments())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Every variant of the app and the model-service is Ready" in proc.stdout


def test_preflight_fails_when_a_variant_is_not_ready(lab: tuple[LabState, Path]) -> None:
    _, state_dir = lab
    proc = run_preflight(state_dir, deployments({"canarylab-model-service-canary": 0}))
    assert proc.returncode != 0
    assert "not ready ['canarylab-model-service-canary']" in proc.stdout
    assert not (state_dir / "lab-target.yml").exists()


def test_preflight_fails_when_a_deployment_is_missing(lab: tuple[LabState, Path]) -> None:
    _, state_dir = lab
    fake = deployments()
    fake["resources"] = fake["resources"][:-1]
    proc = run_preflight(state_dir, fake)
    assert proc.returncode != 0
    assert "not every Deployment is Ready" in proc.stdout


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_preflight_waits_for_a_prometheus_that_is_still_starting(lab: tuple[LabState, Path]) -> None:
    state, state_dir = lab
    state.prometheus_not_ready = 2
    proc = run_preflight(state_dir, extra={"preflight_prometheus_wait_seconds": 5})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert state.ready_checks == 3
    assert (state_dir / "lab-target.yml").exists()


def test_preflight_says_what_is_missing_when_prometheus_is_unreachable(lab: tuple[LabState, Path]) -> None:
    _, state_dir = lab
    endpoints = yaml.safe_load((state_dir / "endpoints.yml").read_text())
    endpoints["prometheus_url"] = f"http://127.0.0.1:{_closed_port()}"
    (state_dir / "endpoints.yml").write_text(yaml.safe_dump(endpoints))
    proc = run_preflight(state_dir)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())  # the YAML callback folds long messages
    assert "FAILED - RETRYING" in out  # it retried before giving up
    assert f"not reachable at {endpoints['prometheus_url']}" in out
    assert "the monitoring stack is not installed or not reachable" in out
    assert "playbooks/mesh.yml" in out
    assert "kubectl -n monitoring get pods" in out
    assert not (state_dir / "lab-target.yml").exists()
