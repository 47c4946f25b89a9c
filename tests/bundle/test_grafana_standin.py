"""The container lab's Grafana stand-in (bundle/images/grafana-standin), on loopback.

The project's own Grafana client (canarylab/grafana.py, what `canarylab dashboard
import` and the experiment's annotator use) talks to it; the sidecar's pass reads
ConfigMaps from a list instead of the API server; the datasource is a small
Prometheus look-alike on loopback that records what reached it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from grafana_standin_loader import load

from canarylab.errors import CanarylabError
from canarylab.grafana import Credentials, GrafanaClient, import_dashboard

from .conftest import ROOT

DASHBOARD = json.loads((ROOT / "charts" / "canarylab" / "dashboards" / "canarylab-latency.json").read_text())
USER, PASSWORD = "admin", "not-a-real-password"


standin = load()


class _Prometheus(BaseHTTPRequestHandler):
    seen: list[str] = []  # noqa: RUF012 - the class is the test's recorder
    #: a query for /slow waits for this (the test sets it)
    release = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Prometheus.seen.append(self.path)
        if self.path.startswith("/slow"):
            _Prometheus.release.wait(30)
        data = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _configmap(name: str, labels: dict[str, str], dashboard: dict[str, Any] = DASHBOARD) -> Any:
    return ("canarylab", name, labels, {"grafana_folder": "canarylab"}, {"d.json": json.dumps(dashboard)})


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Any, Any, str, str]]:
    prom, prom_url = _serve(_Prometheus)
    _Prometheus.seen = []
    provisioning = tmp_path / "datasources.yaml"
    provisioning.write_text(
        json.dumps(
            {
                "apiVersion": 1,
                "datasources": [
                    {"name": "Prometheus", "type": "prometheus", "uid": "prometheus", "url": prom_url + "/"}
                ],
            }
        )
    )
    settings = standin.Settings(admin_user=USER, admin_password=PASSWORD, datasources_file=str(provisioning))
    state = standin.State(datasources=standin.load_datasources(str(provisioning)))
    server, url = _serve(standin.make_handler(state, settings))
    yield state, settings, url, prom_url
    server.shutdown()
    prom.shutdown()


def _client(url: str, password: str = PASSWORD) -> GrafanaClient:
    return GrafanaClient(url, Credentials(source="test", user=USER, password=password))


def _get(url: str, path: str, **kw: Any) -> requests.Response:
    return requests.get(f"{url}{path}", auth=(USER, PASSWORD), timeout=10, **kw)


def test_health_names_the_standin_and_needs_no_credentials(lab: Any) -> None:
    _, _, url, _ = lab
    body = _client(url, password="wrong").health()
    assert body["database"] == "ok"
    assert "standin" in body["version"]


def test_every_other_endpoint_wants_the_admin_credentials(lab: Any) -> None:
    _, _, url, _ = lab
    assert requests.get(f"{url}/api/search", timeout=10).status_code == 401
    assert requests.get(f"{url}/api/search", auth=(USER, "wrong"), timeout=10).status_code == 401
    with pytest.raises(CanarylabError, match="rejected the credentials"):
        _client(url, password="wrong").annotate("x", ["canarylab"], 1)


def test_the_sidecar_imports_labelled_configmaps_into_their_folder(lab: Any) -> None:
    state, settings, url, _ = lab
    other = {**DASHBOARD, "uid": "other", "title": "Other"}
    state.sync(
        [
            _configmap("ours", {"grafana_dashboard": "1"}),
            _configmap("wrong-value", {"grafana_dashboard": "0"}, other),
            _configmap("unlabelled", {}, other),
        ],
        settings,
    )
    hits = _get(url, "/api/search", params={"query": ""}).json()
    assert [(h["uid"], h["folderTitle"]) for h in hits] == [(DASHBOARD["uid"], "canarylab")]
    got = _get(url, f"/api/dashboards/uid/{DASHBOARD['uid']}").json()
    assert (got["meta"]["provisioned"], got["meta"]["version"]) == (True, 1)
    state.sync([_configmap("ours", {"grafana_dashboard": "1"})], settings)  # the resync: no change
    assert _get(url, f"/api/dashboards/uid/{DASHBOARD['uid']}").json()["meta"]["version"] == 1
    assert got["dashboard"]["title"] == DASHBOARD["title"]
    assert got["dashboard"]["panels"] == DASHBOARD["panels"]
    # the ConfigMap goes, so does its dashboard
    state.sync([], settings)
    assert _get(url, f"/api/dashboards/uid/{DASHBOARD['uid']}").status_code == 404


def test_a_dashboard_without_its_datasource_is_refused_and_reported(lab: Any) -> None:
    state, settings, url, _ = lab
    state.datasources = [{"name": "Loki", "type": "loki", "uid": "loki", "url": "http://127.0.0.1:1/"}]
    state.sync([_configmap("ours", {"grafana_dashboard": "1"})], settings)
    assert _get(url, "/api/search").json() == []
    problems = _get(url, "/api/standin/rejected").json()
    [(source, reasons)] = problems.items()
    assert "configmap canarylab/ours" in source
    assert any("no datasource of type 'prometheus'" in r for r in reasons)


def test_a_literal_datasource_uid_must_be_provisioned(lab: Any) -> None:
    state, _, _, _ = lab
    panel = {"title": "p", "type": "timeseries", "datasource": {"type": "prometheus", "uid": "missing"}}
    problems = standin.datasource_problems(
        {"panels": [{"type": "row", "panels": [panel]}]}, state.datasources
    )
    assert problems == ["panel 'p': datasource uid 'missing' is not provisioned"]
    ok = {**panel, "datasource": {"type": "prometheus", "uid": "prometheus"}}
    assert standin.datasource_problems({"panels": [ok]}, state.datasources) == []


def test_the_project_client_imports_folders_and_dashboards(lab: Any) -> None:
    state, settings, url, _ = lab
    client = _client(url)
    copy = {**DASHBOARD, "uid": "canarylab-copy"}
    first = import_dashboard(client, copy)
    assert first.folder.created is True
    again = import_dashboard(client, copy)
    assert again.folder.created is False
    assert (again.uid, again.version) == ("canarylab-copy", first.version + 1)  # as Grafana
    assert again.url == "/d/canarylab-copy/" + standin.slug(DASHBOARD["title"])
    # a provisioned dashboard may not be replaced through the API, as in Grafana
    state.sync([_configmap("ours", {"grafana_dashboard": "1"})], settings)
    with pytest.raises(CanarylabError, match="provisions dashboard"):
        import_dashboard(client, DASHBOARD)


def test_annotations_are_kept_and_found_by_tag(lab: Any) -> None:
    _, _, url, _ = lab
    client = _client(url)
    first = client.annotate("run-1: load start", ["canarylab", "run:1"], 1_000)
    second = client.annotate("run-2: load start", ["canarylab", "run:2"], 2_000, 2_500)
    assert second == first + 1
    found = _get(url, "/api/annotations", params={"tags": "run:2"}).json()
    assert [(a["text"], a["time"], a["timeEnd"]) for a in found] == [("run-2: load start", 2_000, 2_500)]


def test_the_datasource_proxy_forwards_queries_to_prometheus(lab: Any) -> None:
    _, _, url, _ = lab
    [ds] = _get(url, "/api/datasources").json()
    assert (ds["uid"], ds["type"], ds["access"]) == ("prometheus", "prometheus", "proxy")
    resp = _get(url, "/api/datasources/proxy/uid/prometheus/api/v1/query", params={"query": "up"})
    assert resp.json()["status"] == "success"
    assert _Prometheus.seen == ["/api/v1/query?query=up"]
    assert _get(url, "/api/datasources/proxy/uid/nope/api/v1/query").status_code == 404


def test_settings_refuse_to_start_without_credentials() -> None:
    with pytest.raises(SystemExit, match="GF_SECURITY_ADMIN_PASSWORD"):
        standin.Settings.from_env({"GF_SECURITY_ADMIN_USER": "admin"})
    got = standin.Settings.from_env(
        {"GF_SECURITY_ADMIN_USER": "a", "GF_SECURITY_ADMIN_PASSWORD": "b", "LABEL": "x", "PORT": "3001"}
    )
    assert (got.label, got.port, got.label_value) == ("x", 3001, "1")


def test_a_slow_datasource_query_holds_up_nothing_else(lab: Any) -> None:
    _, _, url, _ = lab
    _Prometheus.release.clear()
    slow: list[int] = []
    proxied = threading.Thread(
        target=lambda: slow.append(_get(url, "/api/datasources/proxy/uid/prometheus/slow").status_code)
    )
    proxied.start()
    try:
        while "/slow" not in _Prometheus.seen:  # the proxied query is at the datasource now
            proxied.join(0.05)
            assert proxied.is_alive()
        # while it waits there, the rest of the API answers (a held lock would block it)
        assert _get(url, "/api/search").status_code == 200
        assert _client(url).annotate("during a slow query", ["canarylab"], 1) > 0
        assert slow == []
    finally:
        _Prometheus.release.set()
        proxied.join(30)
    assert slow == [200]
