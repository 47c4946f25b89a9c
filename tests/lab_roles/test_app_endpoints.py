"""playbooks/app.yml's last play: .canarylab/endpoints.yml and the printed URLs.

With an inventory that has only the host (no controller, no nodes), the build,
import and deploy plays match no host, and the host's play runs for real.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import canarylab_contract as contract

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GROUP_VARS = ROOT / "inventory" / "group_vars" / "all"
# A lab's own variables (the example inventory's): the pool the fixed addresses come from.
NETWORK = ROOT / "inventory" / "examples" / "group_vars" / "all" / "network.yml"


def test_app_playbook_writes_the_endpoints_file(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"localhost": {"ansible_connection": "local"}},
                    "children": {"controller": {}},
                    # the lab's own variables, in the inventory: they win over the roles' defaults
                    "vars": yaml.safe_load(NETWORK.read_text()),
                }
            }
        )
    )
    state_dir = tmp_path / "state"
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        str(ROOT / "playbooks" / "app.yml"),
        "-i",
        str(inventory),
        "-e",
        f"@{GROUP_VARS / 'contract.yml'}",
        "-e",
        json.dumps({"canarylab_state_dir": str(state_dir), "cluster_controller": "none"}),
    ]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    endpoints = yaml.safe_load((state_dir / "endpoints.yml").read_text())
    canarylab_defaults = yaml.safe_load((ROOT / "roles" / "canarylab" / "defaults" / "main.yml").read_text())
    network = yaml.safe_load(NETWORK.read_text())
    # The fixed addresses are the first three of the MetalLB pool.
    first = ipaddress.ip_address(network["cluster_loadbalancer_range"].split("-")[0].strip())
    gateway = f"http://{first}"
    assert endpoints["namespace"] == canarylab_defaults["canarylab_namespace"]
    assert endpoints["gateway_url"] == gateway
    assert endpoints["api_url"] == gateway + contract.APP_API_PATH
    assert endpoints["grafana_url"] == f"http://{first + 1}"
    assert endpoints["prometheus_url"] == f"http://{first + 2}:9090"
    assert endpoints["variant_header"] == contract.VARIANT_HEADER
    assert endpoints["variants"] == list(contract.VARIANTS)
    assert endpoints["grafana_password_file"] == str(state_dir / "grafana-admin-password")
    dashboards = sorted((ROOT / "charts" / "canarylab" / "dashboards").glob("*.json"))
    if dashboards:
        uid = json.loads(dashboards[0].read_text())["uid"]
        assert endpoints["grafana_dashboard_url"] == f"{endpoints['grafana_url']}/d/{uid}"
    for url in (endpoints["app_url"], endpoints["grafana_url"], endpoints["prometheus_url"]):
        assert url in proc.stdout
