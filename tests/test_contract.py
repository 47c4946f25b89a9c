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
