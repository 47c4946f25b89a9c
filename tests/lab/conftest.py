"""The live-lab suite: run it after `vagrant up` (make lab-test, or pytest tests/lab).

It reads the inventory the Vagrantfile wrote (inventory/vagrant.yml, or the file
named by CANARYLAB_LAB_INVENTORY: inventory/containers.yml for the container nodes, a
copy of inventory/examples/servers.yml) and reaches the nodes through testinfra's
Ansible backend (ssh), or its podman backend for the container nodes (canarylab_podman).
Without that inventory every test is skipped, and the reason is printed (-ra); with
it, none is.  Run with -s to see the timings the traffic tests print."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

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


#: The layers playbooks/site.yml installs when the inventory names none (canarylab_site_layers).
LAYERS_DEFAULT = ("cluster", "mesh", "monitoring", "app")


@pytest.fixture(scope="session")
def layers(lab_vars: dict[str, Any]) -> list[str]:
    """The layers this lab installed (canarylab_site_layers, else site.yml's default)."""
    return list(lab_vars.get("canarylab_site_layers", LAYERS_DEFAULT))


def require_layer(layers: list[str], layer: str) -> None:
    """Skip, saying why, where the lab installs no ``layer`` (a module's checks need it)."""
    if layer not in layers:
        pytest.skip(f"the lab installs no {layer} layer (canarylab_site_layers: {layers})")


def pool_address(lab_vars: dict[str, Any], offset: int) -> ipaddress.IPv4Address:
    """The MetalLB pool's address ``offset`` after its first (gateway 0, Grafana 1, Prometheus 2:
    roles/canarylab), inside the lab's private network."""
    first = ipaddress.IPv4Address(re.split(r"\s*[-/]", lab_vars["cluster_loadbalancer_range"].strip())[0])
    ip = first + offset
    assert ip in ipaddress.ip_network(lab_vars["cluster_private_network"])
    return ip


def until(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    """``probe()`` every 2 s until it returns something true (network errors count as not yet),
    or AssertionError with the last answer after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last: {last})")
        time.sleep(2)


def node_ip(nodes: dict[str, dict[str, Any]], name: str) -> str:
    return str(nodes[name].get("cluster_node_ip") or nodes[name]["ansible_host"])


#: Connections that reach a node by `podman exec`.  testinfra's Ansible backend maps none of them
#: to a backend of its own, so it would run each command as an Ansible module: about 8 s a command
#: here, against 0.5 s for testinfra's podman backend, the same `podman exec`.
PODMAN_CONNECTIONS = frozenset({"canarylab_podman", "containers.podman.podman"})


def lab_host(name: str) -> Any:
    hostvars = AnsibleRunner.get_runner(str(INVENTORY)).get_variables(name)
    if hostvars.get("ansible_connection") in PODMAN_CONNECTIONS:
        return testinfra.get_host(f"podman://{hostvars.get('ansible_host', name)}", sudo=True)
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
