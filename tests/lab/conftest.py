"""The live-lab suite: run it after `vagrant up` (make lab-test, or pytest tests/lab).

It reads the inventory the Vagrantfile wrote (inventory/vagrant.yml, or the file
named by CANARYLAB_LAB_INVENTORY: inventory/containers.yml for the container nodes, a
copy of inventory/examples/servers.yml) and reaches the nodes through testinfra's
Ansible backend (ssh, or ``containers.podman.podman`` for the container nodes).
Without that inventory every test is skipped, and the reason is printed (-ra); with
it, none is.  Run with -s to see the timings the traffic tests print."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from .kube import Kube

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = Path(os.environ.get("CANARYLAB_LAB_INVENTORY", ROOT / "inventory" / "vagrant.yml"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.lab)
    if not INVENTORY.exists():
        skip = pytest.mark.skip(
            reason=f"no lab inventory at {INVENTORY}: run `canarylab up` (or `vagrant up`) first, "
            "or set CANARYLAB_LAB_INVENTORY (docs/lab.md)"
        )
        for item in items:
            item.add_marker(skip)


def _hosts(group: str) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(INVENTORY.read_text())
    found: dict[str, dict[str, Any]] = {}

    def walk(name: str, node: dict[str, Any] | None, inside: bool) -> None:
        node = node or {}
        inside = inside or name == group
        if inside:
            found.update({h: v or {} for h, v in (node.get("hosts") or {}).items()})
        for child, sub in (node.get("children") or {}).items():
            walk(child, sub, inside)

    walk("all", data["all"], False)
    return found


@pytest.fixture(scope="session")
def nodes() -> dict[str, dict[str, Any]]:
    return _hosts("k8s_cluster")


@pytest.fixture(scope="session")
def controller_name() -> str:
    return next(iter(_hosts("controller")))


@pytest.fixture(scope="session")
def worker_names() -> list[str]:
    return list(_hosts("workers"))


@pytest.fixture(scope="session")
def lab_vars(controller_name: str) -> dict[str, Any]:
    """The controller's variables as Ansible resolves them from the lab's inventory: its own
    vars and group_vars, with the pins (cluster_private_network, cluster_loadbalancer_range,
    kubernetes_version, ...)."""
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(INVENTORY), "--host", controller_name],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        pytest.fail(f"ansible-inventory could not read {INVENTORY}: {proc.stderr.strip()}")
    resolved: dict[str, Any] = json.loads(proc.stdout)
    return resolved


def node_ip(nodes: dict[str, dict[str, Any]], name: str) -> str:
    return str(nodes[name].get("cluster_node_ip") or nodes[name]["ansible_host"])


def lab_host(name: str) -> Any:
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


@pytest.fixture(scope="session")
def controller(controller_name: str) -> Any:
    return lab_host(controller_name)


@pytest.fixture(scope="session")
def kubectl(controller: Any) -> Any:
    def run(*args: str) -> Any:
        out = controller.check_output("kubectl --kubeconfig /etc/kubernetes/admin.conf " + " ".join(args))
        return json.loads(out) if "-o json" in " ".join(args) or "-ojson" in args else out

    return run


@pytest.fixture(scope="session")
def kube(controller: Any) -> Kube:
    """kubectl on the controller with typed helpers (apply, get, bounded polls): kube.py."""
    return Kube(controller)
