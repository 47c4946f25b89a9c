# Ours, not grafana-client: 5.1.4 pulls urllib3-future, which overwrites requests' urllib3 (see docs).
"""A small client for Grafana's HTTP API: health, folders, dashboard import, annotations.

It speaks the classic ``/api`` endpoints, which Grafana 11 and 12 both serve:

- ``GET /api/health`` (no auth): is this Grafana at all?
- ``GET /api/folders/<uid>``, ``POST /api/folders``: the folder, created once;
- ``POST /api/dashboards/db`` with ``overwrite: true``: create or replace by uid;
- ``POST /api/annotations``: an organisation annotation with tags.

Credentials, first found wins: ``GRAFANA_TOKEN`` (a service-account token),
``GRAFANA_USER`` + ``GRAFANA_PASSWORD``, then user ``admin`` with the password
the lab stored in ``.canarylab/grafana-admin-password``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from canarylab.errors import CanarylabError
from canarylab.paths import state_dir

ADMIN_USER = "admin"
PASSWORD_FILE = "grafana-admin-password"  # noqa: S105 - a file name, not a password
DEFAULT_FOLDER_UID = "canarylab"
DEFAULT_FOLDER_TITLE = "canarylab"


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: a bearer token, or a user and password (HTTP basic)."""

    source: str
    token: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def apply(self, session: requests.Session) -> None:
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.user is not None and self.password is not None:
            session.auth = (self.user, self.password)


def find_credentials(env: Mapping[str, str] | None = None, state: Path | None = None) -> Credentials:
    """GRAFANA_TOKEN, else GRAFANA_USER/GRAFANA_PASSWORD, else admin + the stored password file."""
    env = os.environ if env is None else env
    if env.get("GRAFANA_TOKEN"):
        return Credentials(source="GRAFANA_TOKEN", token=env["GRAFANA_TOKEN"])
    user, password = env.get("GRAFANA_USER"), env.get("GRAFANA_PASSWORD")
    if user or password:
        if not (user and password):
            raise CanarylabError(
                "GRAFANA_USER and GRAFANA_PASSWORD must be set together",
                "set both, or unset both to use GRAFANA_TOKEN or the stored admin password",
            )
        return Credentials(source="GRAFANA_USER/GRAFANA_PASSWORD", user=user, password=password)
    path = (state if state is not None else state_dir()) / PASSWORD_FILE
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if not stored:
        raise CanarylabError(
            f"no Grafana credentials: GRAFANA_TOKEN, GRAFANA_USER/GRAFANA_PASSWORD unset and {path} missing",
            "bring the lab up (it stores the admin password there), or export GRAFANA_TOKEN",
        )
    return Credentials(source=str(path), user=ADMIN_USER, password=stored)


@dataclass(frozen=True)
class Folder:
    uid: str
    title: str
    created: bool


@dataclass(frozen=True)
class ImportResult:
    uid: str
    url: str
    version: int
    folder: Folder

    def link(self, base_url: str) -> str:
        return base_url.rstrip("/") + self.url if self.url.startswith("/") else self.url


@dataclass
class GrafanaClient:
    url: str
    credentials: Credentials
    timeout: float = 10.0
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.session.headers["Accept"] = "application/json"
        self.credentials.apply(self.session)

    # --- transport -----------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, expect: Sequence[int] = (200,), **kw: Any
    ) -> requests.Response:
        endpoint = f"{self.url}{path}"
        try:
            resp = self.session.request(method, endpoint, timeout=self.timeout, **kw)
        except requests.ConnectionError as err:
            raise CanarylabError(
                f"cannot connect to Grafana at {self.url} (connection refused or unreachable)",
                "check --grafana-url and that Grafana runs; in the lab see docs/dashboard.md",
            ) from err
        except requests.Timeout as err:
            raise CanarylabError(
                f"Grafana at {self.url} did not answer {method} {path} within {self.timeout:.0f}s",
                "check that Grafana is healthy",
            ) from err
        if resp.status_code in expect:
            return resp
        raise self._error(method, path, resp)

    def _error(self, method: str, path: str, resp: requests.Response) -> CanarylabError:
        msg = _message(resp)
        code = resp.status_code
        if code == 401:
            return CanarylabError(
                f"Grafana at {self.url} rejected the credentials from {self.credentials.source} (HTTP 401)",
                "check GRAFANA_TOKEN, GRAFANA_USER/GRAFANA_PASSWORD, or .canarylab/grafana-admin-password",
            )
        if code == 403:
            return CanarylabError(
                f"Grafana at {self.url} refused {method} {path} (HTTP 403: {msg})",
                "the account or token needs the Editor or Admin role",
            )
        if code == 404:
            return CanarylabError(
                f"Grafana at {self.url} has no {path} (HTTP 404: {msg})",
                "check that --grafana-url is Grafana's root URL (with its sub-path, if served under one)",
            )
        return CanarylabError(f"Grafana {method} {path} failed: HTTP {code}: {msg}")

    def _json(self, resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError as err:
            raise CanarylabError(
                f"{resp.url} answered HTTP {resp.status_code} without JSON",
                f"check that {self.url} is Grafana",
            ) from err

    # --- API -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /api/health``: fails with a clear error when the URL is not Grafana."""
        body = self._json(self._request("GET", "/api/health"))
        if not isinstance(body, dict) or "database" not in body:
            raise CanarylabError(f"{self.url}/api/health does not look like Grafana's", "check --grafana-url")
        return body

    def ensure_folder(self, uid: str, title: str) -> Folder:
        """The folder ``uid``, created with ``title`` if it does not exist yet."""
        resp = self._request("GET", f"/api/folders/{uid}", expect=(200, 404))
        if resp.status_code == 200:
            return Folder(uid=uid, title=str(self._json(resp).get("title", title)), created=False)
        resp = self._request("POST", "/api/folders", json={"uid": uid, "title": title}, expect=(200, 409))
        if resp.status_code == 409:
            # Made by someone else since we looked, or the title is taken by another uid.
            again = self._request("GET", f"/api/folders/{uid}", expect=(200, 404))
            if again.status_code == 200:
                return Folder(uid=uid, title=str(self._json(again).get("title", title)), created=False)
            # E.g. the lab's dashboard sidecar made "canarylab" with a uid of its own: use that one.
            same_title = [f for f in self._folders() if f.get("title") == title]
            if len(same_title) == 1:
                return Folder(uid=str(same_title[0]["uid"]), title=title, created=False)
            raise CanarylabError(
                f"Grafana at {self.url} refused to create folder {title!r} ({uid}): {_message(resp)}",
                "pass --folder with another title, or delete or rename the clashing folder",
            )
        body = self._json(resp)
        return Folder(uid=str(body.get("uid", uid)), title=str(body.get("title", title)), created=True)

    def _folders(self) -> list[dict[str, Any]]:
        body = self._json(self._request("GET", "/api/folders", params={"limit": 1000}))
        return [f for f in body if isinstance(f, dict)] if isinstance(body, list) else []

    def import_dashboard(
        self,
        dashboard: Mapping[str, Any],
        folder: Folder,
        message: str = "imported by canarylab",
    ) -> ImportResult:
        """Create or replace the dashboard with the same uid, in ``folder`` (idempotent)."""
        payload = {
            "dashboard": {**dashboard, "id": None},
            "folderUid": folder.uid,
            "overwrite": True,
            "message": message,
        }
        resp = self._request("POST", "/api/dashboards/db", json=payload, expect=(200, 400))
        if resp.status_code == 400:
            msg = _message(resp)
            if "provisioned" in msg.lower():
                raise CanarylabError(
                    f"Grafana at {self.url} provisions dashboard {dashboard.get('uid')} from a file "
                    "(in the lab: the chart's ConfigMap, through the sidecar), so the API may not replace it",
                    "it already follows the chart; to import an editable copy, add --uid with another uid",
                )
            raise CanarylabError(f"Grafana rejected the dashboard (HTTP 400: {msg})")
        body = self._json(resp)
        return ImportResult(
            uid=str(body.get("uid", dashboard.get("uid"))),
            url=str(body.get("url", "")),
            version=int(body.get("version", 0)),
            folder=folder,
        )

    def annotate(
        self,
        text: str,
        tags: Sequence[str],
        time_ms: int,
        time_end_ms: int | None = None,
    ) -> int:
        """An organisation-wide annotation (every dashboard that queries its tags shows it)."""
        payload: dict[str, Any] = {"time": time_ms, "tags": list(tags), "text": text}
        if time_end_ms is not None:
            payload["timeEnd"] = time_end_ms
        body = self._json(self._request("POST", "/api/annotations", json=payload))
        return int(body.get("id", 0))


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200] or resp.reason
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return resp.text.strip()[:200]


def import_dashboard(
    client: GrafanaClient,
    dashboard: Mapping[str, Any],
    folder_uid: str = DEFAULT_FOLDER_UID,
    folder_title: str = DEFAULT_FOLDER_TITLE,
) -> ImportResult:
    """Health check, folder, then the dashboard: what ``canarylab dashboard import`` does."""
    client.health()
    folder = client.ensure_folder(folder_uid, folder_title)
    return client.import_dashboard(dashboard, folder)
