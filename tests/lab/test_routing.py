"""The app's routing in a live lab: the chart's split, the variant pin, and each app's
model-service call staying on its own variant, all through the ingress gateway from the host.

Run when the lab has the `app` layer (canarylab_site_layers).  Every request is a real
review sent to the API (`POST /api/sentiment`) at the gateway's MetalLB address, the first
address of the lab's pool, inside its own network.  The app answers with its variant in the
contract's header; the body is the model-service's answer, with the model-service's variant:
the two must agree on every request, pinned or not.  The split is the chart's own (the
variants' `weight` in charts/canarylab/values.yaml, which the lab installs unchanged).

Load is bounded: UNPINNED + PINNED x 2 requests, WORKERS at a time, each with a timeout.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import binom

from .conftest import pool_address, require_layer
from .kube import Kube

ROOT = Path(__file__).resolve().parents[2]
CHART_VALUES = ROOT / "charts" / "canarylab" / "values.yaml"
UNPINNED = 1000
PINNED = 100
WORKERS = 4
#: The split must lie inside the central 99.9% of Binomial(UNPINNED, weight).
CONFIDENCE = 0.999
REQUEST_TIMEOUT = 10
READY_TIMEOUT = 300
REVIEW = json.dumps({"review": "a slow start, then a film I could not stop watching"}).encode()


@dataclass(frozen=True)
class Answer:
    status: int
    app: str
    model_service: str
    detail: str


@pytest.fixture(scope="module", autouse=True)
def _app_layer(layers: list[str]) -> None:
    require_layer(layers, "app")


@pytest.fixture(scope="module")
def contract(lab_vars: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = lab_vars["canarylab_contract"]
    return found


@pytest.fixture(scope="module")
def api_url(lab_vars: dict[str, Any], contract: dict[str, Any]) -> str:
    """The API at the gateway: the first address of the MetalLB pool (roles/canarylab)."""
    return f"http://{pool_address(lab_vars, 0)}{contract['paths']['app_api']}"


def _deployments_ready(kube: Kube, namespace: str) -> list[str] | None:
    items = kube.get("-n", namespace, "deployments")["items"]
    ready = [
        d["metadata"]["name"]
        for d in items
        if d["status"].get("readyReplicas", 0) == d["spec"].get("replicas", 1)
        and d["status"].get("updatedReplicas", 0) == d["spec"].get("replicas", 1)
    ]
    return ready if items and len(ready) == len(items) else None


@pytest.fixture(scope="module")
def app_ready(kube: Kube, lab_vars: dict[str, Any]) -> list[str]:
    namespace = lab_vars.get("canarylab_namespace", "canarylab")
    ready = kube.poll(
        f"every Deployment in {namespace} Ready", lambda: _deployments_ready(kube, namespace), READY_TIMEOUT
    )
    # two variants, each an app and a model-service
    assert len(ready) == 4, ready
    for pod in kube.get("-n", namespace, "pods")["items"]:
        names = [c["name"] for c in pod["spec"]["containers"]] + [
            c["name"] for c in pod["spec"].get("initContainers", [])
        ]
        assert "istio-proxy" in names, f"{pod['metadata']['name']} has no sidecar: {names}"
    return ready


def ask(url: str, header: str, pin: str | None) -> Answer:
    """One review through the gateway, straight (never through a proxy of the environment)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Content-Type": "application/json", **({header: pin} if pin else {})}
    request = urllib.request.Request(url, data=REVIEW, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=REQUEST_TIMEOUT) as answer:
            body = json.loads(answer.read())
            return Answer(int(answer.status), answer.headers.get(header, ""), str(body.get("variant")), "")
    except urllib.error.HTTPError as err:
        return Answer(
            int(err.code), err.headers.get(header, ""), "", err.read().decode(errors="replace")[:200]
        )
    except (urllib.error.URLError, OSError) as err:
        return Answer(0, "", "", str(err))


def send(url: str, header: str, pins: list[str | None]) -> list[Answer]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda pin: ask(url, header, pin), pins))


def _weights() -> dict[str, int]:
    variants = yaml.safe_load(CHART_VALUES.read_text())["variants"]
    return {name: int(v["weight"]) for name, v in variants.items()}


def _summary(answers: list[Answer]) -> str:
    counts = Counter((a.status, a.app, a.model_service) for a in answers)
    failures = {a.detail for a in answers if a.status != 200}
    return f"{dict(counts)}; failures: {sorted(failures)[:3]}"


def test_unpinned_requests_split_as_the_chart_weights_them(
    api_url: str, contract: dict[str, Any], app_ready: list[str]
) -> None:
    header, variants = contract["variant_header"], contract["variants"]
    weights = _weights()
    assert set(weights) == set(variants)
    assert sum(weights.values()) == 100
    started = time.monotonic()
    answers = send(api_url, header, [None] * UNPINNED)
    seconds = time.monotonic() - started
    print(f"routing: {UNPINNED} unpinned requests in {seconds:.1f} s: {_summary(answers)}")
    assert all(a.status == 200 for a in answers), _summary(answers)
    served = Counter(a.app for a in answers)
    assert set(served) <= set(variants), served
    for variant in variants:
        low, high = binom.interval(CONFIDENCE, UNPINNED, weights[variant] / 100)
        assert low <= served[variant] <= high, (
            f"{variant}: {served[variant]} of {UNPINNED}, outside the {CONFIDENCE:.1%} binomial range "
            f"[{low:.0f}, {high:.0f}] of weight {weights[variant]}%"
        )
    # each app's model-service call stayed on the app's own variant, unpinned
    strays = [a for a in answers if a.model_service != a.app]
    assert not strays, f"{len(strays)} requests crossed variants: {_summary(strays)}"


@pytest.mark.parametrize("variant", ["stable", "canary"])
def test_every_pinned_request_is_answered_by_its_variant(
    api_url: str, contract: dict[str, Any], app_ready: list[str], variant: str
) -> None:
    assert variant in contract["variants"]
    answers = send(api_url, contract["variant_header"], [variant] * PINNED)
    print(f"routing: {PINNED} requests pinned to {variant}: {_summary(answers)}")
    assert all(a.status == 200 for a in answers), _summary(answers)
    assert Counter(a.app for a in answers) == {variant: PINNED}, _summary(answers)
    assert Counter(a.model_service for a in answers) == {variant: PINNED}, _summary(answers)
