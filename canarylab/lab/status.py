"""What the lab is running and where: nodes, pods, URLs, the Grafana password file.

URLs come from .canarylab/endpoints.yml when the lab roles have written it;
otherwise from fixed addresses in roles/canarylab/defaults/main.yml, where they are literal
(the shipped defaults derive them from the inventory's MetalLB pool, so none is shown
before provisioning has written endpoints.yml).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from canarylab.paths import state_dir

KUBECONFIG = "kubeconfig"
ENDPOINTS = "endpoints.yml"
GRAFANA_PASSWORD_FILE = "grafana-admin-password"  # noqa: S105 - a file name, not a password
CANARYLAB_DEFAULTS = Path("roles/canarylab/defaults/main.yml")
ISTIO_DEFAULTS = Path("roles/istio/defaults/main.yml")
MONITORING_DEFAULTS = Path("roles/monitoring/defaults/main.yml")


def _yaml(path: Path) -> dict[str, object]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _plain(value: object) -> str | None:
    """A literal YAML value (not a Jinja template), as text."""
    text = str(value) if value is not None else None
    return None if text is None or "{{" in text else text


@dataclass(frozen=True)
class Endpoints:
    urls: dict[str, str]
    source: str  # the file they came from
    written_by_lab: bool


def endpoints(root: Path) -> Endpoints:
    """The lab's URLs: as the lab wrote them, else the configured fixed addresses."""
    written = state_dir(root) / ENDPOINTS
    data = _yaml(written)
    if data:
        urls = {str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float)}
        return Endpoints(urls=urls, source=str(written), written_by_lab=True)
    mesh = _yaml(root / CANARYLAB_DEFAULTS)
    urls = {}
    grafana, prometheus, gateway = (
        _plain(mesh.get(k))
        for k in ("canarylab_grafana_ip", "canarylab_prometheus_ip", "canarylab_gateway_ip")
    )
    if grafana:
        urls["grafana"] = f"http://{grafana}"
    if prometheus:
        urls["prometheus"] = f"http://{prometheus}:9090"
    if gateway:
        urls["app"] = f"http://{gateway}"
    return Endpoints(urls=urls, source=str(root / CANARYLAB_DEFAULTS), written_by_lab=False)


def namespaces(root: Path) -> dict[str, str]:
    """The namespaces worth showing: the app's, the mesh's, monitoring."""
    mesh = _yaml(root / CANARYLAB_DEFAULTS)
    istio = _yaml(root / ISTIO_DEFAULTS)
    monitoring = _yaml(root / MONITORING_DEFAULTS)
    found = {
        "app": _plain(mesh.get("canarylab_namespace")) or "canarylab",
        "mesh": _plain(istio.get("istio_namespace")) or "istio-system",
        "gateway": _plain(istio.get("istio_gateway_namespace")) or "istio-ingress",
        "monitoring": _plain(monitoring.get("monitoring_namespace")) or "monitoring",
    }
    return found


@dataclass
class KubeOutput:
    title: str
    ok: bool
    text: str


@dataclass
class ClusterView:
    kubeconfig: Path
    sections: list[KubeOutput] = field(default_factory=list)

    @property
    def reachable(self) -> bool:
        return bool(self.sections) and self.sections[0].ok


def kubectl(kubeconfig: Path, args: list[str], timeout: float = 30.0) -> KubeOutput:
    title = "kubectl " + " ".join(args)
    path = shutil.which("kubectl")
    if path is None:
        return KubeOutput(
            title, False, "kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/)"
        )
    argv = [path, f"--kubeconfig={kubeconfig}", "--request-timeout=10s", *args]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return KubeOutput(title, False, f"no answer within {timeout:.0f}s")
    text = (out.stdout if out.returncode == 0 else out.stderr or out.stdout).rstrip()
    return KubeOutput(title, out.returncode == 0, text)


def cluster_view(root: Path) -> ClusterView | None:
    """Nodes and pods through .canarylab/kubeconfig, or None when there is no kubeconfig."""
    config = state_dir(root) / KUBECONFIG
    if not config.is_file():
        return None
    view = ClusterView(kubeconfig=config)
    view.sections.append(kubectl(config, ["get", "nodes", "-o", "wide"]))
    if view.reachable:
        for ns in namespaces(root).values():
            view.sections.append(kubectl(config, ["get", "pods", "-n", ns, "-o", "wide"]))
    return view
