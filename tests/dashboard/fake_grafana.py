"""A small fake of Grafana's HTTP API on 127.0.0.1, for the client's tests.

NOT Grafana: it implements only the endpoints canarylab calls, with the status
codes and bodies Grafana 11/12 document for them, checks credentials the way
Grafana does (HTTP basic or a bearer token), records every request, and can be
told to answer 401 or 404 to everything.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class State:
    user: str = "admin"
    password: str = "s3cret"
    token: str = "glsa_test_token"
    #: when set, every /api request (health included) gets this status
    force_status: int | None = None
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: uids of dashboards provisioned from files (the API may not overwrite them)
    provisioned: set[str] = field(default_factory=set)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, method: str, path_prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing ------------------------------------------------------------------

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _authorised(self) -> bool:
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        if auth == f"Bearer {st.token}":
            return True
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return (user, password) == (st.user, st.password)
        return False

    def _handle(self, method: str) -> None:
        st = self.server.state
        body = self._body() if method == "POST" else None
        path = self.path.split("?", 1)[0]
        with st.lock:
            st.requests.append(Recorded(method, path, dict(self.headers.items()), body))
            if st.force_status is not None:
                self._send(st.force_status, {"message": "forced by the test"})
                return
            if method == "GET" and path == "/api/health":
                self._send(200, {"commit": "fake", "database": "ok", "version": "12.1.0-fake"})
                return
            if not self._authorised():
                self._send(401, {"message": "Unauthorized"})
                return
            route = {
                ("GET", "folder"): self._get_folder,
                ("GET", "/api/folders"): self._list_folders,
                ("POST", "/api/folders"): self._post_folder,
                ("POST", "/api/dashboards/db"): self._post_dashboard,
                ("POST", "/api/annotations"): self._post_annotation,
            }
            key = (
                (method, "folder") if method == "GET" and path.startswith("/api/folders/") else (method, path)
            )
            handler = route.get(key)
            if handler is None:
                self._send(404, {"message": "Not found"})
                return
            handler(path, body)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # --- endpoints -------------------------------------------------------------------

    def _get_folder(self, path: str, _body: Any) -> None:
        folder = self.server.state.folders.get(path.rsplit("/", 1)[1])
        if folder is None:
            self._send(404, {"message": "folder not found", "status": "not-found"})
        else:
            self._send(200, folder)

    def _list_folders(self, _path: str, _body: Any) -> None:
        self._send(
            200,
            [
                {"id": f["id"], "uid": f["uid"], "title": f["title"]}
                for f in self.server.state.folders.values()
            ],
        )

    def _post_folder(self, _path: str, body: Any) -> None:
        st = self.server.state
        uid, title = body.get("uid"), body.get("title")
        if not title:
            self._send(400, {"message": "folder title cannot be empty"})
            return
        if uid in st.folders or any(f["title"] == title for f in st.folders.values()):
            self._send(409, {"message": "a folder with the same name or uid already exists"})
            return
        folder = {"id": len(st.folders) + 1, "uid": uid, "title": title, "url": f"/dashboards/f/{uid}/"}
        st.folders[uid] = folder
        self._send(200, folder)

    def _post_dashboard(self, _path: str, body: Any) -> None:
        st = self.server.state
        dashboard = body.get("dashboard") or {}
        uid = dashboard.get("uid")
        folder_uid = body.get("folderUid")
        if folder_uid and folder_uid not in st.folders:
            self._send(400, {"message": "folder not found"})
            return
        if not dashboard.get("title"):
            self._send(400, {"message": "Dashboard title cannot be empty"})
            return
        if uid in st.provisioned:
            self._send(
                400, {"message": "Cannot save provisioned dashboard", "status": "provisioned-dashboard"}
            )
            return
        existing = st.dashboards.get(uid)
        if existing is not None and not body.get("overwrite"):
            self._send(
                412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
            )
            return
        version = existing["version"] + 1 if existing else 1
        slug = _slug(dashboard["title"])
        st.dashboards[uid] = {"dashboard": dashboard, "folderUid": folder_uid, "version": version}
        self._send(
            200,
            {
                "id": 1,
                "uid": uid,
                "url": f"/d/{uid}/{slug}",
                "status": "success",
                "version": version,
                "slug": slug,
            },
        )

    def _post_annotation(self, _path: str, body: Any) -> None:
        st = self.server.state
        if not isinstance(body.get("time"), int) or not body.get("text"):
            self._send(400, {"message": "bad annotation"})
            return
        st.annotations.append(body)
        self._send(200, {"message": "Annotation added", "id": len(st.annotations)})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeGrafana:
    """``with FakeGrafana() as g: ... g.url ... g.state``: serves until the block ends."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeGrafana:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
