"""roles/monitoring's kube-prometheus-stack values, rendered by Ansible from the
role's template with the lab's variables (the example inventory's own group_vars over
the roles' defaults): no release-label trap, no password in values, Grafana's sidecar
on, fixed addresses."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventory" / "examples" / "servers.yml"
NETWORK = ROOT / "inventory" / "examples" / "group_vars" / "all" / "network.yml"


@pytest.fixture(scope="module")
def values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("monitoring")
    out = tmp / "values.yml"
    playbook = tmp / "render.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    # the roles' defaults as the lab's plays have them; none of their tasks runs
                    "roles": ["cluster", "canarylab", "monitoring"],
                    "tasks": [
                        {
                            "name": "Template",
                            "tags": ["render"],
                            "ansible.builtin.template": {
                                "src": str(ROOT / "roles" / "monitoring" / "templates" / "values.yml.j2"),
                                "dest": str(out),
                                "mode": "0644",
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(INVENTORY),
        str(playbook),
        "--tags",
        "render",
        "--skip-tags",
        "always",
        "-e",
        json.dumps({"ansible_python_interpreter": sys.executable, "cluster_admin_kubeconfig": "/x"}),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    loaded = yaml.safe_load(out.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_no_release_label_trap(values: dict[str, Any]) -> None:
    spec = values["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "probe", "rule", "scrapeConfig"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
    for kind in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{kind}NamespaceSelector"] == {}


def test_grafana_password_only_through_a_secret(values: dict[str, Any]) -> None:
    grafana = values["grafana"]
    assert "adminPassword" not in grafana
    assert grafana["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }


def test_grafana_dashboard_sidecar_matches_the_chart(values: dict[str, Any]) -> None:
    chart_values = yaml.safe_load((ROOT / "charts" / "canarylab" / "values.yaml").read_text())
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True
    assert sidecar["label"] == chart_values["dashboard"]["label"]
    assert sidecar["labelValue"] == chart_values["dashboard"]["labelValue"]
    assert sidecar["searchNamespace"] == "ALL"
    assert sidecar["folderAnnotation"] == "grafana_folder"


def test_fixed_addresses(values: dict[str, Any]) -> None:
    """Grafana and Prometheus get the 2nd and 3rd address of the MetalLB pool (the gateway the 1st)."""
    network = yaml.safe_load(NETWORK.read_text())
    first, last = (ipaddress.ip_address(a.strip()) for a in network["cluster_loadbalancer_range"].split("-"))
    annotation = "metallb.universe.tf/loadBalancerIPs"
    assert values["grafana"]["service"]["type"] == "LoadBalancer"
    assert values["grafana"]["service"]["annotations"][annotation] == str(first + 1)
    assert values["prometheus"]["service"]["type"] == "LoadBalancer"
    assert values["prometheus"]["service"]["annotations"][annotation] == str(first + 2)
    assert first + 2 <= last
