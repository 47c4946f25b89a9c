"""A live lab, after `vagrant up`: nodes, the kubelets (node IPs, disk, pressure), flannel, MetalLB."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from .conftest import ROOT, lab_host, node_ip


def _ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def test_every_inventory_node_is_ready(kubectl: Any, nodes: dict[str, Any]) -> None:
    items = {n["metadata"]["name"]: n for n in kubectl("get nodes -o json")["items"]}
    assert set(items) == set(nodes)
    assert [name for name, n in items.items() if not _ready(n)] == []


def test_nodes_run_the_pinned_kubernetes(kubectl: Any, lab_vars: dict[str, Any]) -> None:
    for n in kubectl("get nodes -o json")["items"]:
        assert n["status"]["nodeInfo"]["kubeletVersion"] == f"v{lab_vars['kubernetes_version']}"
        assert n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_node_internal_ip_is_the_private_ip(kubectl: Any, nodes: dict[str, Any]) -> None:
    for n in kubectl("get nodes -o json")["items"]:
        name = n["metadata"]["name"]
        internal = [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
        assert internal == [node_ip(nodes, name)], name
        assert "10.0.2.15" not in internal


def test_kubelet_runs_with_the_node_ip(nodes: dict[str, Any]) -> None:
    for name in nodes:
        host = lab_host(name)
        assert host.service("kubelet").is_running, name
        cmdline = host.check_output("cat /proc/$(pgrep -xo kubelet)/cmdline | tr '\\0' ' '")
        assert f"--node-ip={node_ip(nodes, name)}" in cmdline, name


#: The kubelet's disk signals (evictionHard) and what a node that is a container sets them to.
DISK_SIGNALS = ("nodefs.available", "nodefs.inodesFree", "imagefs.available")
#: Events of a kubelet that came under pressure or reclaimed resources (images, pods evicted).
RECLAIM_REASONS = {
    "NodeHasDiskPressure",
    "NodeHasInsufficientMemory",
    "NodeHasInsufficientPID",
    "EvictionThresholdMet",
    "Evicted",
    "FreeDiskSpaceFailed",
    "ImageGCFailed",
}


def _in_container(name: str) -> bool:
    return int(lab_host(name).run("systemd-detect-virt --container --quiet").rc) == 0


def test_the_kubelet_manages_disk_only_where_the_disk_is_the_nodes(
    kubectl: Any, nodes: dict[str, Any]
) -> None:
    """A container node's disk is the host's: the kubelet must neither delete images nor evict for it."""
    for name in nodes:
        config = json.loads(kubectl(f"get --raw /api/v1/nodes/{name}/proxy/configz"))["kubeletconfig"]
        hard = config["evictionHard"]
        if _in_container(name):
            assert config["imageGCHighThresholdPercent"] == 100, name
            assert {s: hard.get(s) for s in DISK_SIGNALS} == dict.fromkeys(DISK_SIGNALS, "0%"), name
        else:
            assert config["imageGCHighThresholdPercent"] == 85, name
            assert {s: hard.get(s) for s in DISK_SIGNALS} == {
                "nodefs.available": "10%",
                "nodefs.inodesFree": "5%",
                "imagefs.available": "15%",
            }, name
        assert hard.get("memory.available") == "100Mi", name


def test_no_node_came_under_pressure_and_nothing_was_reclaimed(kubectl: Any) -> None:
    for n in kubectl("get nodes -o json")["items"]:
        pressure = [
            c["type"]
            for c in n["status"]["conditions"]
            if c["type"].endswith("Pressure") and c["status"] != "False"
        ]
        assert pressure == [], f"{n['metadata']['name']} is under {pressure}"
    events = kubectl("get events --all-namespaces -o json")["items"]
    reclaimed = [
        f"{e['involvedObject'].get('namespace', '')}/{e['involvedObject']['name']}: "
        f"{e['reason']}: {e.get('message', '')}"
        for e in events
        if e.get("reason") in RECLAIM_REASONS
    ]
    assert reclaimed == [], "the kubelet reclaimed resources (kubectl get events -A):\n" + "\n".join(
        reclaimed
    )


def test_flannel_uses_each_node_private_ip(kubectl: Any, nodes: dict[str, Any]) -> None:
    for n in kubectl("get nodes -o json")["items"]:
        name = n["metadata"]["name"]
        annotations = n["metadata"].get("annotations", {})
        assert annotations.get("flannel.alpha.coreos.com/public-ip") == node_ip(nodes, name), name


def test_flannel_vxlan_device_binds_the_private_interface(nodes: dict[str, Any]) -> None:
    for name in nodes:
        host = lab_host(name)
        details = host.check_output("ip -d link show flannel.1")
        assert f"local {node_ip(nodes, name)}" in details, name
        private_dev = host.check_output(
            f"ip -o -4 addr show | awk '$4 ~ /^{node_ip(nodes, name)}\\// {{print $2}}'"
        )
        assert private_dev, name
        assert f"dev {private_dev.strip()}" in details, name


def test_flannel_daemonset_is_ready(kubectl: Any, nodes: dict[str, Any]) -> None:
    ds = kubectl("-n kube-flannel get daemonset kube-flannel-ds -o json")
    assert ds["status"]["numberReady"] == len(nodes)


def test_metallb_pool_lies_in_the_private_network(kubectl: Any, lab_vars: dict[str, Any]) -> None:
    pool = kubectl("-n metallb-system get ipaddresspools.metallb.io canarylab-pool -o json")
    assert pool["spec"]["addresses"] == [lab_vars["cluster_loadbalancer_range"]]
    first, last = (ipaddress.ip_address(a) for a in lab_vars["cluster_loadbalancer_range"].split("-"))
    network = ipaddress.ip_network(lab_vars["cluster_private_network"])
    assert first in network
    assert last in network
    l2 = kubectl("-n metallb-system get l2advertisements.metallb.io canarylab-pool -o json")
    assert l2["spec"]["ipAddressPools"] == ["canarylab-pool"]


def test_kubeconfig_on_the_host_is_private() -> None:
    kubeconfig = ROOT / ".canarylab" / "kubeconfig"
    assert kubeconfig.is_file()
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
