"""The shared names are defined once; the rendered copies for Ansible and Helm must match."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import yaml

import canarylab_contract as contract
from canarylab import contract_export


def test_rendered_copies_are_current(root: Path) -> None:
    assert contract_export.stale(root) == [], "run `canarylab contract export` and commit"


def test_ansible_copy_carries_the_same_header(root: Path) -> None:
    data = yaml.safe_load((root / "inventory/group_vars/all/contract.yml").read_text())
    assert data["canarylab_contract"]["variant_header"] == contract.VARIANT_HEADER


def test_stale_detects_a_drifted_copy(tmp_path: Path) -> None:
    contract_export.write(tmp_path)
    assert contract_export.stale(tmp_path) == []
    target = tmp_path / "charts/canarylab/files/contract.yaml"
    target.write_text(target.read_text().replace(contract.VARIANT_HEADER, "x-other"))
    assert contract_export.stale(tmp_path) == [target]


def test_buckets_keep_histogram_quantile_within_ten_percent() -> None:
    b = contract.LATENCY_BUCKETS
    assert b[0] <= 0.005
    assert b[-1] >= 30.0
    worst = max(hi / lo for lo, hi in itertools.pairwise(b))
    # Interpolating inside [lo, hi] is off by less than hi/lo - 1.
    assert worst - 1 <= 0.1 + 1e-4


@pytest.mark.parametrize(("lo", "hi", "g"), [(0, 1, 1.1), (1, 0.5, 1.1), (0.1, 1, 1.0)])
def test_bucket_arguments_are_checked(lo: float, hi: float, g: float) -> None:
    with pytest.raises(ValueError, match="lowest"):
        contract.latency_buckets(lo, hi, g)


def test_bucket_count_is_logarithmic() -> None:
    b = contract.latency_buckets(0.001, 1.0, 2.0)
    assert len(b) == math.ceil(math.log2(1000)) + 1


def test_ports_do_not_clash() -> None:
    local: list[int] = []
    for value in contract.LOCAL_PORTS.values():
        local.extend(value.values() if isinstance(value, dict) else [value])
    assert len(local) == len(set(local)), local
    for per_variant in ("model_service", "model_service_metrics", "app"):
        ports = contract.LOCAL_PORTS[per_variant]
        assert isinstance(ports, dict)
        assert set(ports) == set(contract.VARIANTS)
    in_pod = [contract.MODEL_SERVICE_PORT, contract.MODEL_SERVICE_METRICS_PORT, contract.APP_PORT]
    assert len(in_pod) == len(set(in_pod))


def test_limits_are_shared() -> None:
    assert contract.as_dict()["limits"] == {"max_body_bytes": 64 * 1024, "max_review_chars": 5000}


#: Ports the lab's own stack, or a tool a lab host commonly runs, listens on.
LAB_STACK_PORTS = {
    3000: "Grafana",
    6443: "kube-apiserver",
    7946: "MetalLB memberlist",
    8472: "VXLAN (flannel)",
    9090: "Prometheus",
    10250: "kubelet",
    10256: "kube-proxy health",
}


def _registered_ports(services: Path) -> dict[int, str]:
    ports: dict[int, str] = {}
    for line in services.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and "/" in fields[1]:
            number, _, proto = fields[1].partition("/")
            if proto == "tcp" and number.isdigit():
                ports[int(number)] = fields[0]
    return ports


def test_registered_ports_are_read() -> None:
    # Guards the test below: a parser that reads nothing would pass anything.
    ports = _registered_ports(Path("/etc/services"))
    assert ports[22] == "ssh"
    assert len(ports) > 100


@pytest.mark.parametrize(
    "port", [contract.MODEL_SERVICE_PORT, contract.MODEL_SERVICE_METRICS_PORT, contract.APP_PORT]
)
def test_default_ports_clash_with_nothing_well_known(port: int) -> None:
    services = Path("/etc/services")
    assert services.is_file(), "/etc/services (Debian's netbase) is missing: apt-get install netbase"
    registered = _registered_ports(services)
    # 8080 and 8000 are the conventional HTTP alternates for an app in a pod.
    if port not in (8080, 8000):
        assert port not in registered, f"port {port} is registered to {registered.get(port)}"
    assert not 9100 <= port <= 9999, "Prometheus exporters' default ports (node_exporter has 9100)"
    assert not 15000 <= port <= 15090, "Istio's sidecar reserves these"
    assert port not in LAB_STACK_PORTS, LAB_STACK_PORTS.get(port)
