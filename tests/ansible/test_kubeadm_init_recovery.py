"""roles/kubeadm_control_plane recovers from a `kubeadm init` that did not complete.

kubeadm writes admin.conf in its kubeconfig phase, before wait-control-plane,
upload-config, bootstrap-token and the addons.  A role that skips init once
admin.conf exists never retries a timed-out first init, and leaves a cluster
without cluster-info, CoreDNS or kube-proxy.  Here a stand-in `kubeadm` writes
admin.conf and then fails, as a timeout does, and a stand-in `kubectl` answers
for the cluster-info ConfigMap that only a completed init publishes.  A small
HTTPS server on 127.0.0.1 plays the API server's /readyz.
"""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.integration

PLAYBOOK = "kubeadm_control_plane_init.yml"

FAKE_KUBEADM = r"""#!/bin/sh
# Stand-in kubeadm: `init` writes admin.conf (the kubeconfig phase), then fails
# while $STATE/init-failures-left > 0 (a timed-out wait-control-plane); else it
# publishes cluster-info.  `reset` removes what init wrote.
set -eu
STATE="@STATE@"
echo "$*" >> "$STATE/calls"
case "$1" in
  init)
    test ! -e "@ADMIN_CONF@" || { echo "[ERROR FileAvailable]: @ADMIN_CONF@ already exists" >&2; exit 1; }
    echo "apiVersion: v1" > "@ADMIN_CONF@"
    left=$(cat "$STATE/init-failures-left" 2>/dev/null || echo 0)
    if [ "$left" -gt 0 ]; then
      echo $((left - 1)) > "$STATE/init-failures-left"
      echo "[wait-control-plane] timed out waiting for the condition" >&2
      exit 1
    fi
    touch "$STATE/cluster-info"
    ;;
  reset)
    rm -f "@ADMIN_CONF@" "$STATE/cluster-info"
    ;;
  *) echo "stand-in kubeadm: unexpected $*" >&2; exit 2 ;;
esac
"""

FAKE_KUBECTL = r"""#!/bin/sh
# Stand-in kubectl: answers `get configmap cluster-info` from the stand-in's state.
STATE="@STATE@"
echo "kubectl $*" >> "$STATE/calls"
case "$*" in
  *"get configmap cluster-info"*)
    if [ -e "$STATE/api-down" ]; then
      echo 'The connection to the server 127.0.0.1:6443 was refused' >&2; exit 1
    fi
    if [ -e "$STATE/cluster-info" ]; then echo configmap/cluster-info; exit 0; fi
    echo 'Error from server (NotFound): configmaps "cluster-info" not found' >&2
    exit 1
    ;;
esac
echo "stand-in kubectl: unexpected $*" >&2
exit 2
"""


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "api.crt", tmp_path / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def api_port(tmp_path: Path) -> Iterator[int]:
    """/readyz over HTTPS on 127.0.0.1, as the API server answers it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == "/readyz" else 404
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class StandIn:
    def __init__(self, tmp_path: Path) -> None:
        self.state = tmp_path / "state"
        self.bin = tmp_path / "bin"
        self.etc = tmp_path / "etc"
        for d in (self.state, self.bin, self.etc / "kubernetes"):
            d.mkdir(parents=True)
        self.admin_conf = self.etc / "kubernetes" / "admin.conf"
        for name, script in (("kubeadm", FAKE_KUBEADM), ("kubectl", FAKE_KUBECTL)):
            path = self.bin / name
            path.write_text(
                script.replace("@STATE@", str(self.state)).replace("@ADMIN_CONF@", str(self.admin_conf))
            )
            path.chmod(0o755)

    def fail_next_inits(self, count: int) -> None:
        (self.state / "init-failures-left").write_text(str(count))

    def calls(self) -> list[str]:
        path = self.state / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        path.unlink(missing_ok=True)
        return [line.split(" --", 1)[0] for line in lines if not line.startswith("kubectl")]

    def role_vars(self, api_port: int) -> dict[str, Any]:
        return {
            "kubeadm_control_plane_kubernetes_version": "1.32.10",
            "kubeadm_control_plane_advertise_address": "127.0.0.1",
            "kubeadm_control_plane_bind_port": api_port,
            "kubeadm_control_plane_pod_cidr": "10.244.0.0/16",
            "kubeadm_control_plane_service_cidr": "10.96.0.0/12",
            "kubeadm_control_plane_python_client_version": "31.0.0",
            "kubeadm_control_plane_node_name": "controller-1",
            "kubeadm_control_plane_config": str(self.etc / "kubeadm" / "init.yaml"),
            "kubeadm_control_plane_admin_kubeconfig": str(self.admin_conf),
            "kubeadm_control_plane_api_wait_seconds": 10,
            "kubeadm_control_plane_etcd_data_dir": str(self.etc / "etcd"),
        }


@pytest.fixture
def stand_in(tmp_path: Path) -> StandIn:
    return StandIn(tmp_path)


def test_a_fresh_init_runs_once_and_then_never_again(run_playbook, stand_in, api_port):
    first = run_playbook(PLAYBOOK, stand_in.role_vars(api_port), path_first=[stand_in.bin])
    assert first.rc == 0, first.tail()
    assert stand_in.calls() == ["init"]
    second = run_playbook(PLAYBOOK, stand_in.role_vars(api_port), path_first=[stand_in.bin])
    assert second.rc == 0, second.tail()
    assert stand_in.calls() == []
    assert second.changed == 0, second.tail()


def test_a_failed_init_is_reset_and_retried_in_the_same_run(run_playbook, stand_in, api_port):
    stand_in.fail_next_inits(1)
    run = run_playbook(PLAYBOOK, stand_in.role_vars(api_port), path_first=[stand_in.bin])
    assert run.rc == 0, run.tail()
    assert stand_in.calls() == ["init", "reset", "init"]
    assert (stand_in.state / "cluster-info").exists()


def test_the_next_run_recovers_an_init_that_left_admin_conf_behind(run_playbook, stand_in, api_port):
    """Both attempts of the first run time out after writing admin.conf; the next run converges."""
    stand_in.fail_next_inits(2)
    first = run_playbook(PLAYBOOK, stand_in.role_vars(api_port), path_first=[stand_in.bin])
    assert first.rc != 0
    assert stand_in.calls() == ["init", "reset", "init"]
    assert stand_in.admin_conf.exists()  # what made the old role skip init for good

    second = run_playbook(PLAYBOOK, stand_in.role_vars(api_port), path_first=[stand_in.bin])
    assert second.rc == 0, second.tail()
    assert stand_in.calls() == ["reset", "init"]
    assert (stand_in.state / "cluster-info").exists()

    third = run_playbook(PLAYBOOK, stand_in.role_vars(api_port), path_first=[stand_in.bin])
    assert third.rc == 0, third.tail()
    assert stand_in.calls() == []
    assert third.changed == 0, third.tail()


def test_a_controller_initialised_before_the_marker_is_left_alone(run_playbook, stand_in, api_port):
    """A cluster whose cluster-info exists (an init that completed) is never reset."""
    stand_in.admin_conf.write_text("apiVersion: v1\n")
    (stand_in.state / "cluster-info").touch()
    run = run_playbook(PLAYBOOK, stand_in.role_vars(api_port), path_first=[stand_in.bin])
    assert run.rc == 0, run.tail()
    assert stand_in.calls() == []


def test_a_cluster_whose_api_does_not_answer_is_not_reset(run_playbook, stand_in, api_port):
    """admin.conf and etcd data, but the API refuses connections (a slow restart, a stopped
    kubelet): the role stops with what to check and never resets what may be a working cluster."""
    stand_in.admin_conf.write_text("apiVersion: v1\n")
    (stand_in.etc / "etcd" / "member").mkdir(parents=True)
    (stand_in.state / "api-down").touch()
    variables = {**stand_in.role_vars(api_port), "kubeadm_control_plane_api_wait_seconds": 5}
    run = run_playbook(PLAYBOOK, variables, path_first=[stand_in.bin])
    assert run.rc != 0
    assert "leaves this cluster alone" in run.tail()
    assert stand_in.calls() == []  # no reset, no init
    assert stand_in.admin_conf.exists()


def test_an_init_that_never_started_etcd_is_reset_even_without_an_api(run_playbook, stand_in, api_port):
    """admin.conf but no etcd data: nothing to lose, so the incomplete init is reset and redone."""
    stand_in.admin_conf.write_text("apiVersion: v1\n")
    (stand_in.state / "api-down").touch()
    variables = {**stand_in.role_vars(api_port), "kubeadm_control_plane_api_wait_seconds": 5}
    run = run_playbook(PLAYBOOK, variables, path_first=[stand_in.bin])
    assert stand_in.calls()[:2] == ["reset", "init"], run.tail()
