"""canarylab's Grafana stand-in: the part of Grafana's HTTP API the lab uses, and no more.

This is NOT Grafana.  The container lab has no Grafana (no reachable registry serves
its image, and it cannot be built here; docs/mesh.md), so this stand-in takes its
place there, so that the wiring around Grafana still runs for real:

- the dashboard sidecar: every ConfigMap of every namespace labelled
  ``LABEL=LABEL_VALUE`` (kube-prometheus-stack's ``grafana_dashboard="1"``) is
  read through the Kubernetes API, each ``*.json`` key of it imported as a
  provisioned dashboard, in the folder its ``FOLDER_ANNOTATION`` names;
- the datasources: Grafana's provisioning file (``DATASOURCES``, JSON, which is
  YAML too), with the Prometheus datasource kube-prometheus-stack provisions; a
  dashboard whose datasource variable or panels name no provisioned datasource
  is refused, and the datasource proxy forwards GET queries to Prometheus;
- the API the project calls (canarylab/grafana.py, the experiment's annotator,
  the preflight): ``/api/health``, folders, ``/api/search``,
  ``/api/dashboards/db`` and ``/uid/<uid>``, ``/api/datasources``,
  ``/api/datasources/proxy/uid/<uid>/...`` and ``/api/annotations``, behind
  HTTP basic auth with the admin user and password of Grafana's own environment
  variables (``GF_SECURITY_ADMIN_USER``, ``GF_SECURITY_ADMIN_PASSWORD``).

Everything is in memory and starts empty.  ``/api/health`` names the stand-in in
its ``version``, so nobody mistakes it for Grafana.  Python's standard library
only: the image is the project's Debian base with python3.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NAME = "canarylab-grafana-standin"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NOT_FOUND = {"message": "not found"}

#: A ConfigMap as the sidecar sees it: (namespace, name, labels, annotations, data).
ConfigMap = tuple[str, str, Mapping[str, str], Mapping[str, str], Mapping[str, str]]


@dataclass(frozen=True)
class Settings:
    """The stand-in's environment, named as kube-prometheus-stack's sidecar and Grafana name it."""

    admin_user: str
    admin_password: str = field(repr=False)
    label: str = "grafana_dashboard"
    label_value: str = "1"
    folder_annotation: str = "grafana_folder"
    datasources_file: str = "/etc/grafana/provisioning/datasources/datasources.yaml"
    port: int = 3000
    resync_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        user, password = env.get("GF_SECURITY_ADMIN_USER", ""), env.get("GF_SECURITY_ADMIN_PASSWORD", "")
        if not user or not password:
            raise SystemExit(
                f"{NAME}: GF_SECURITY_ADMIN_USER and GF_SECURITY_ADMIN_PASSWORD must be set "
                "(the monitoring role passes them from its Secret)"
            )
        return cls(
            admin_user=user,
            admin_password=password,
            label=env.get("LABEL", cls.label),
            label_value=env.get("LABEL_VALUE", cls.label_value),
            folder_annotation=env.get("FOLDER_ANNOTATION", cls.folder_annotation),
            datasources_file=env.get("DATASOURCES", cls.datasources_file),
            port=int(env.get("PORT", str(cls.port))),
            resync_seconds=float(env.get("RESYNC_SECONDS", str(cls.resync_seconds))),
        )


def slug(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


def datasource_problems(dashboard: Mapping[str, Any], datasources: list[dict[str, Any]]) -> list[str]:
    """What keeps ``dashboard`` from finding its data among ``datasources``, as Grafana resolves it:
    a ``datasource`` variable takes the default datasource of its plugin type; a literal uid must
    be provisioned."""
    types = {str(d.get("type")) for d in datasources}
    uids = {str(d.get("uid")) for d in datasources}
    variables: set[str] = set()
    out: list[str] = []
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") == "datasource":
            variables.add(str(var.get("name")))
            if str(var.get("query")) not in types:
                out.append(f"variable ${var.get('name')}: no datasource of type {var.get('query')!r}")

    def check(where: str, ref: object) -> None:
        if ref is None:
            return
        uid = ref.get("uid") if isinstance(ref, dict) else ref
        if not isinstance(uid, str) or uid.startswith("-- ") or uid in ("grafana", "-- Grafana --"):
            return  # Grafana's own (annotations, "-- Mixed --")
        if uid.startswith("$") or uid.startswith("${"):
            if uid.strip("${}") not in variables:
                out.append(f"{where}: datasource {uid} is no datasource variable")
        elif uid not in uids:
            out.append(f"{where}: datasource uid {uid!r} is not provisioned")

    for var in (dashboard.get("templating") or {}).get("list") or []:
        check(f"variable ${var.get('name')}", var.get("datasource"))
    panels = list(dashboard.get("panels") or [])
    while panels:
        panel = panels.pop(0)
        panels += panel.get("panels") or []  # a collapsed row holds its panels
        title = panel.get("title", "?")
        check(f"panel {title!r}", panel.get("datasource"))
        for target in panel.get("targets") or []:
            check(f"panel {title!r} query {target.get('refId', '?')}", target.get("datasource"))
    return out


@dataclass
class State:
    """The stand-in's database: in memory, guarded by one lock."""

    datasources: list[dict[str, Any]]
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)  # uid -> title
    annotations: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, list[str]] = field(default_factory=dict)  # source -> problems
    lock: threading.Lock = field(default_factory=threading.Lock)

    def folder_for(self, title: str) -> str:
        for uid, t in self.folders.items():
            if t == title:
                return uid
        uid = slug(title) or "general"
        self.folders[uid] = title
        return uid

    def put_dashboard(self, dashboard: dict[str, Any], folder_uid: str, source: str) -> dict[str, Any] | str:
        """Store ``dashboard``; the problem, as a message, when it cannot be."""
        uid, title = dashboard.get("uid"), dashboard.get("title")
        if not isinstance(uid, str) or not uid or not isinstance(title, str) or not title:
            return "Dashboard title and uid are required"
        problems = datasource_problems(dashboard, self.datasources)
        if problems:
            self.rejected[source] = problems
            return "; ".join(problems)
        self.rejected.pop(source, None)
        old = self.dashboards.get(uid)
        # as Grafana: every save through the API is a new version; the sidecar's resync only
        # when the ConfigMap's dashboard changed
        same = old is not None and old["raw"] == dashboard and source != "api"
        version = old["version"] if old and same else (old["version"] + 1 if old else 1)
        self.dashboards[uid] = {
            "dashboard": {**dashboard, "id": zlib.crc32(uid.encode()) % 100000, "version": version},
            "raw": dashboard,
            "folder_uid": folder_uid,
            "source": source,
            "version": version,
        }
        return self.dashboards[uid]

    def sync(self, configmaps: list[ConfigMap], settings: Settings) -> None:
        """The sidecar's pass: import every labelled ConfigMap's dashboards, drop the vanished ones."""
        seen: set[str] = set()
        with self.lock:
            for namespace, name, labels, annotations, data in configmaps:
                if labels.get(settings.label) != settings.label_value:
                    continue
                folder = annotations.get(settings.folder_annotation, "General")
                for key, text in data.items():
                    if not key.endswith(".json"):
                        continue
                    source = f"configmap {namespace}/{name} key {key}"
                    try:
                        dashboard = json.loads(text)
                    except ValueError as err:
                        self.rejected[source] = [f"not JSON: {err}"]
                        continue
                    result = self.put_dashboard(dashboard, self.folder_for(folder), source)
                    if isinstance(result, dict):
                        seen.add(str(dashboard["uid"]))
            for uid in [u for u, d in self.dashboards.items() if d["source"].startswith("configmap ")]:
                if uid not in seen:
                    del self.dashboards[uid]


class Kubernetes:
    """ConfigMaps of every namespace, through the API server, as the pod's ServiceAccount."""

    def __init__(self, sa_dir: str = SA_DIR) -> None:
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        self.base = f"https://{'[' + host + ']' if ':' in host else host}:{port}"
        self.sa_dir = sa_dir
        self.context = ssl.create_default_context(cafile=f"{sa_dir}/ca.crt")

    def configmaps(self, selector: str) -> list[ConfigMap]:
        with open(f"{self.sa_dir}/token") as f:  # re-read: the kubelet rotates it
            token = f.read().strip()
        query = urllib.parse.urlencode({"labelSelector": selector})
        req = urllib.request.Request(  # noqa: S310 - https to the API server
            f"{self.base}/api/v1/configmaps?{query}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=10, context=self.context) as resp:  # noqa: S310 - the API server
            items = json.load(resp).get("items") or []
        return [
            (
                i["metadata"]["namespace"],
                i["metadata"]["name"],
                i["metadata"].get("labels") or {},
                i["metadata"].get("annotations") or {},
                i.get("data") or {},
            )
            for i in items
        ]


def sidecar(state: State, settings: Settings, list_configmaps: Callable[[str], list[ConfigMap]]) -> None:
    """Resync forever; an API error is reported and retried, never fatal."""
    while True:
        try:
            state.sync(list_configmaps(f"{settings.label}={settings.label_value}"), settings)
        except (OSError, ValueError, KeyError) as err:
            print(f"{NAME}: listing ConfigMaps failed: {err}", file=sys.stderr, flush=True)
        time.sleep(settings.resync_seconds)


def load_datasources(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        data = json.load(f)
    out = []
    for ds in data.get("datasources") or []:
        out.append({"uid": ds.get("uid") or slug(ds["name"]), "access": "proxy", "isDefault": False, **ds})
    return out


def make_handler(state: State, settings: Settings) -> type[BaseHTTPRequestHandler]:
    expected = (
        "Basic " + base64.b64encode(f"{settings.admin_user}:{settings.admin_password}".encode()).decode()
    )

    class Handler(BaseHTTPRequestHandler):
        server_version = NAME

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{NAME}: {self.command} {self.path} -> {format % args}", file=sys.stderr, flush=True)

        def reply(self, code: int, body: object) -> None:
            self.send(code, json.dumps(body).encode())

        def send(self, code: int, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self) -> bool:
            if hmac.compare_digest(self.headers.get("Authorization", ""), expected):
                return True
            self.reply(401, {"message": "Unauthorized"})
            return False

        def body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                return json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return None

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            path, query = url.path.rstrip("/"), urllib.parse.parse_qs(url.query)
            if path == "/api/health":
                self.reply(200, {"commit": NAME, "database": "ok", "version": NAME})
                return
            if not self.authorized():
                return
            parts = path.split("/")
            if path.startswith("/api/datasources/proxy/uid/") and len(parts) >= 6:
                # outside the lock: a slow query must not hold up the rest of the API
                self.proxy(parts[5], "/".join(parts[6:]), url.query)
                return
            with state.lock:
                self.get(path, query)

        def get(self, path: str, query: dict[str, list[str]]) -> None:
            parts = path.split("/")
            if path == "/api/folders":
                self.reply(200, [{"uid": u, "title": t} for u, t in state.folders.items()])
            elif path.startswith("/api/folders/") and len(parts) == 4:
                title = state.folders.get(parts[3])
                self.reply(*((200, {"uid": parts[3], "title": title}) if title else (404, NOT_FOUND)))
            elif path == "/api/search":
                text = (query.get("query") or [""])[0].lower()
                self.reply(
                    200, [self.hit(d) for d in state.dashboards.values() if text in self.title(d).lower()]
                )
            elif path.startswith("/api/dashboards/uid/") and len(parts) == 5:
                self.dashboard(parts[4])
            elif path == "/api/datasources":
                self.reply(200, state.datasources)
            elif path.startswith("/api/datasources/uid/") and len(parts) == 5:
                ds = next((d for d in state.datasources if d["uid"] == parts[4]), None)
                self.reply(*((200, ds) if ds else (404, NOT_FOUND)))
            elif path == "/api/annotations":
                tags = set(query.get("tags") or [])
                self.reply(200, [a for a in state.annotations if tags <= set(a["tags"])])
            elif path == "/api/standin/rejected":  # the stand-in's own: what the sidecar could not import
                self.reply(200, state.rejected)
            else:
                self.reply(404, {"message": f"{NAME} does not serve {path}"})

        def dashboard(self, uid: str) -> None:
            found = state.dashboards.get(uid)
            if found is None:
                self.reply(404, NOT_FOUND)
                return
            hit = self.hit(found)
            meta = {
                "slug": slug(hit["title"]),
                "url": hit["url"],
                "folderUid": hit["folderUid"],
                "folderTitle": hit["folderTitle"],
                "provisioned": found["source"].startswith("configmap "),
                "version": found["version"],
            }
            self.reply(200, {"dashboard": found["dashboard"], "meta": meta})

        def title(self, d: dict[str, Any]) -> str:
            return str(d["dashboard"]["title"])

        def hit(self, d: dict[str, Any]) -> dict[str, Any]:
            uid = str(d["dashboard"]["uid"])
            return {
                "uid": uid,
                "title": self.title(d),
                "type": "dash-db",
                "url": f"/d/{uid}/{slug(self.title(d))}",
                "tags": d["dashboard"].get("tags") or [],
                "folderUid": d["folder_uid"],
                "folderTitle": state.folders.get(d["folder_uid"], "General"),
            }

        def proxy(self, uid: str, rest: str, raw_query: str) -> None:
            """Grafana's datasource proxy, GET only: the request goes on to the datasource's URL."""
            ds = next((d for d in state.datasources if d["uid"] == uid), None)
            if ds is None:
                self.reply(404, {"message": "Data source not found"})
                return
            target = str(ds["url"]).rstrip("/") + "/" + rest + (f"?{raw_query}" if raw_query else "")
            try:
                with urllib.request.urlopen(target, timeout=30) as resp:  # noqa: S310 - the provisioned URL
                    code, data = resp.status, resp.read()
            except urllib.error.HTTPError as err:
                code, data = err.code, err.read()
            except OSError as err:
                self.reply(502, {"message": f"datasource {uid} at {ds['url']} unreachable: {err}"})
                return
            self.send(code, data)

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path.rstrip("/")
            if not self.authorized():
                return
            body = self.body()
            if not isinstance(body, dict):
                self.reply(400, {"message": "bad request data"})
                return
            with state.lock:
                self.post(path, body)

        def post(self, path: str, body: dict[str, Any]) -> None:
            endpoints = {
                "/api/folders": self.post_folder,
                "/api/dashboards/db": self.post_dashboard,
                "/api/annotations": self.post_annotation,
            }
            if path in endpoints:
                endpoints[path](body)
            else:
                self.reply(404, {"message": f"{NAME} does not serve POST {path}"})

        def post_folder(self, body: dict[str, Any]) -> None:
            title = str(body.get("title", ""))
            uid = str(body.get("uid") or slug(title))
            if not title:
                self.reply(400, {"message": "folder title cannot be empty"})
            elif uid in state.folders or title in state.folders.values():
                self.reply(409, {"message": "a folder with the same name or uid already exists"})
            else:
                state.folders[uid] = title
                self.reply(200, {"uid": uid, "title": title})

        def post_dashboard(self, body: dict[str, Any]) -> None:
            dashboard = body.get("dashboard")
            if not isinstance(dashboard, dict):
                self.reply(400, {"message": "dashboard is required"})
                return
            old = state.dashboards.get(str(dashboard.get("uid")))
            folder = str(body.get("folderUid") or "")
            if old and old["source"].startswith("configmap "):
                self.reply(400, {"message": "Cannot save provisioned dashboard"})
            elif old and not body.get("overwrite"):
                self.reply(412, {"message": "A dashboard with the same uid already exists"})
            elif folder and folder not in state.folders:
                self.reply(400, {"message": "folder not found"})
            else:
                result = state.put_dashboard(dashboard, folder, "api")
                if isinstance(result, str):
                    self.reply(400, {"message": result})
                    return
                hit = self.hit(result)
                saved = {"uid": hit["uid"], "url": hit["url"], "status": "success"}
                self.reply(200, {**saved, "version": result["version"], "id": result["dashboard"]["id"]})

        def post_annotation(self, body: dict[str, Any]) -> None:
            if not isinstance(body.get("time"), int) or not isinstance(body.get("tags", []), list):
                self.reply(400, {"message": "time (ms) and tags are required"})
                return
            annotation = {
                "id": len(state.annotations) + 1,
                "time": body["time"],
                "timeEnd": body.get("timeEnd", body["time"]),
                "tags": [str(t) for t in body.get("tags", [])],
                "text": str(body.get("text", "")),
            }
            state.annotations.append(annotation)
            self.reply(200, {"id": annotation["id"], "message": "Annotation added"})

    return Handler


def main() -> None:
    settings = Settings.from_env(os.environ)
    state = State(datasources=load_datasources(settings.datasources_file))
    print(f"{NAME}: datasources {[d['name'] for d in state.datasources]}", flush=True)
    kube = Kubernetes()
    threading.Thread(target=sidecar, args=(state, settings, kube.configmaps), daemon=True).start()
    server = ThreadingHTTPServer(("", settings.port), make_handler(state, settings))
    # PID 1 of its container gets no default signal handling: stop at once on SIGTERM, not at
    # the end of the pod's grace period
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(f"{NAME}: serving Grafana's API subset on :{settings.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
