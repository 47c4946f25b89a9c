"""Monitoring in a live lab: Prometheus on its fixed address, scraping the app's pods and loading
the chart's rules, asked from the host through its HTTP API.

Run when the lab has the `monitoring` layer (canarylab_site_layers).  Prometheus is at the third
address of the lab's MetalLB pool, port 9090, inside the lab's own network.  The checks on the
app's targets and rules run when the lab also has the `app` layer.  Every wait is bounded.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from .conftest import pool_address, require_layer, until

#: New pods are discovered within a scrape interval or two (15 s by default).
TARGETS_TIMEOUT = 120
REQUEST_TIMEOUT = 10


@pytest.fixture(scope="module", autouse=True)
def _monitoring_layer(layers: list[str]) -> None:
    require_layer(layers, "monitoring")


@pytest.fixture(scope="module")
def prometheus(lab_vars: dict[str, Any]) -> str:
    """Prometheus's URL: the third address of the MetalLB pool (roles/canarylab)."""
    return f"http://{pool_address(lab_vars, 2)}:9090"


def get_json(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=REQUEST_TIMEOUT) as answer:
        return json.loads(answer.read())


def test_prometheus_answers_on_its_fixed_address_at_the_pinned_version(
    prometheus: str, lab_vars: dict[str, Any]
) -> None:
    info = until("Prometheus's build info", lambda: get_json(f"{prometheus}/api/v1/status/buildinfo"), 60)
    print(f"monitoring: {prometheus}: {info['data']}")
    # the container lab runs the bundle's Prometheus; the VM lab kube-prometheus-stack's own
    if lab_vars.get("cluster_bundle_dir"):
        assert info["data"]["version"] == lab_vars["bundle_prometheus_version"]


def _app_targets(prometheus: str, namespace: str) -> list[dict[str, Any]] | None:
    active = get_json(f"{prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
    mine = [t for t in active if t["labels"].get("namespace") == namespace]
    return mine if mine and all(t["health"] == "up" for t in mine) else None


def test_every_pod_of_the_app_is_scraped_and_up(
    prometheus: str, layers: list[str], lab_vars: dict[str, Any]
) -> None:
    require_layer(layers, "app")
    namespace = lab_vars.get("canarylab_namespace", "canarylab")
    contract = lab_vars["canarylab_contract"]
    targets = until(
        f"every target in {namespace} up", lambda: _app_targets(prometheus, namespace), TARGETS_TIMEOUT
    )
    pods = sorted({t["labels"].get("pod", "?") for t in targets})
    print(f"monitoring: {len(targets)} targets up in {namespace}: {pods}")
    # an app and a model-service per variant, each scraped (the metrics carry the variant themselves)
    assert len(pods) >= 2 * len(contract["variants"]), pods
    # the metric the experiment decides on is there, per variant
    metric = contract["metrics"]["model_processing_seconds"]
    query = urllib.parse.quote(f"count by (variant) ({metric}_count)")
    result = get_json(f"{prometheus}/api/v1/query?query={query}")["data"]["result"]
    assert {r["metric"].get("variant") for r in result} == set(contract["variants"]), result


def test_the_charts_rules_are_loaded(prometheus: str, layers: list[str]) -> None:
    require_layer(layers, "app")
    groups = until(
        "the chart's rule groups",
        lambda: [
            g for g in get_json(f"{prometheus}/api/v1/rules")["data"]["groups"] if "canarylab" in g["name"]
        ],
        TARGETS_TIMEOUT,
    )
    print(f"monitoring: rule groups {[g['name'] for g in groups]}")
    assert all(g["rules"] for g in groups)
