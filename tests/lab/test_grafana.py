"""Grafana in a live lab, through the HTTP API the project uses, from the host.

On the VM lab this is kube-prometheus-stack's Grafana; on the container lab the
stand-in of its API (bundle/images/grafana-standin, NOT Grafana; docs/mesh.md).
Only Grafana's own endpoints are asked, so both must pass the same checks: the
dashboard the chart ships reaches Grafana through the sidecar's label, into its
folder; the provisioned Prometheus datasource answers every panel's query
through Grafana's datasource proxy; annotations are kept, and only with the
admin credentials the lab stored (.canarylab/grafana-admin-password).

Run when the lab has the `monitoring` layer; the dashboard checks when it has
the `app` layer too.  Grafana is at the second address of the MetalLB pool.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from canarylab.grafana import Credentials, GrafanaClient, find_credentials

from .conftest import pool_address, require_layer, until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "charts" / "canarylab" / "dashboards" / "canarylab-latency.json").read_text())
#: The sidecar resyncs within seconds; a new Grafana pod needs a little longer.
SIDECAR_TIMEOUT = 120
TIMEOUT = 10


@pytest.fixture(scope="module", autouse=True)
def _monitoring_layer(layers: list[str]) -> None:
    require_layer(layers, "monitoring")


@pytest.fixture(scope="module")
def grafana(lab_vars: dict[str, Any]) -> str:
    return f"http://{pool_address(lab_vars, 1)}"


@pytest.fixture(scope="module")
def credentials() -> Credentials:
    return find_credentials(env={}, state=ROOT / ".canarylab")


@pytest.fixture(scope="module")
def session(credentials: Credentials) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # the lab's own network, never through a proxy
    credentials.apply(s)
    return s


def _get(session: requests.Session, url: str, **params: str) -> Any:
    resp = session.get(url, params=params, timeout=TIMEOUT)
    resp.raise_for_status()
    return resp.json()


def test_grafana_answers_and_refuses_the_unauthenticated(grafana: str, session: requests.Session) -> None:
    health = until("Grafana's health", lambda: _get(session, f"{grafana}/api/health"), 120)
    print(f"grafana: {grafana}: {health}")
    assert health["database"] == "ok"
    anonymous = requests.Session()
    anonymous.trust_env = False
    assert anonymous.get(f"{grafana}/api/search", timeout=TIMEOUT).status_code == 401
    assert anonymous.post(f"{grafana}/api/annotations", json={}, timeout=TIMEOUT).status_code == 401


def test_the_charts_dashboard_comes_through_the_sidecar_into_its_folder(
    grafana: str,
    session: requests.Session,
    layers: list[str],
) -> None:
    require_layer(layers, "app")
    uid = DASHBOARD["uid"]

    def found() -> Any:
        hits = _get(session, f"{grafana}/api/search", query=DASHBOARD["title"])
        return [h for h in hits if h.get("uid") == uid]

    [hit] = until(f"dashboard {uid} in Grafana", found, SIDECAR_TIMEOUT)
    assert hit["folderTitle"] == "canarylab"
    got = _get(session, f"{grafana}/api/dashboards/uid/{uid}")
    assert got["meta"]["provisioned"] is True
    assert got["dashboard"]["title"] == DASHBOARD["title"]
    assert len(got["dashboard"]["panels"]) == len(DASHBOARD["panels"])


def _queries(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for panel in panels:
        out += _queries(panel.get("panels") or [])
        out += [(panel.get("title", "?"), t["expr"]) for t in panel.get("targets") or [] if t.get("expr")]
    return out


def test_every_panel_query_answers_through_the_datasource_proxy(
    grafana: str,
    session: requests.Session,
    layers: list[str],
) -> None:
    datasources = _get(session, f"{grafana}/api/datasources")
    [default] = [d for d in datasources if d.get("type") == "prometheus" and d.get("isDefault")]
    proxy = f"{grafana}/api/datasources/proxy/uid/{default['uid']}/api/v1/query"
    # Prometheus finds its targets at its first service discovery after the lab is up: tests/lab
    # may start within seconds of that (it did, at 15 s, in session 25)
    up = until(
        "Prometheus, asked through Grafana, knows a target",
        lambda: (r := _get(session, proxy, query="up"))["data"]["result"] and r,
        timeout=120,
    )
    assert up["status"] == "success"
    if "app" not in layers:
        return
    namespace = "canarylab"
    queries = _queries(DASHBOARD["panels"])
    assert len(queries) >= 5
    failed = []
    for title, expr in queries:
        promql = re.sub(r"\$\{?namespace\}?", namespace, expr)
        promql = re.sub(r"\$\{?(interval|__rate_interval)\}?", "1m", promql)
        answer = session.get(proxy, params={"query": promql}, timeout=TIMEOUT)
        if answer.status_code != 200 or answer.json().get("status") != "success":
            failed.append(f"{title}: {promql} -> HTTP {answer.status_code} {answer.text[:200]}")
    assert failed == []
    print(f"grafana: {len(queries)} panel queries answered through datasource {default['uid']}")


def test_annotations_are_kept_and_found_by_tag(grafana: str, credentials: Credentials) -> None:
    client = GrafanaClient(grafana, credentials)
    client.session.trust_env = False
    tag = f"lab-test:{int(time.time())}"
    now_ms = int(time.time() * 1000)
    posted = client.annotate("tests/lab: an annotation", ["canarylab", tag], now_ms)
    assert posted > 0
    found = _get(client.session, f"{grafana}/api/annotations", tags=tag)
    assert [a["text"] for a in found] == ["tests/lab: an annotation"]
