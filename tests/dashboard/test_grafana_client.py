"""The Grafana API client against a fake Grafana on 127.0.0.1 (no real Grafana runs here):
the requests it sends, idempotent overwrite into a folder, credentials, and its errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fake_grafana import FakeGrafana

from canarylab.cli import main
from canarylab.dashboard.build import UID, build
from canarylab.errors import CanarylabError
from canarylab.grafana import (
    DEFAULT_FOLDER_UID,
    PASSWORD_FILE,
    GrafanaClient,
    find_credentials,
    import_dashboard,
)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _client(g: FakeGrafana, state: Path, env: dict[str, str] | None = None) -> GrafanaClient:
    return GrafanaClient(g.url, find_credentials(env or {}, state), timeout=5)


def test_import_creates_the_folder_then_the_dashboard_with_the_stored_admin_password(
    fake_grafana: FakeGrafana, state: Path
) -> None:
    result = import_dashboard(_client(fake_grafana, state), build())

    st = fake_grafana.state
    assert [(r.method, r.path) for r in st.requests] == [
        ("GET", "/api/health"),
        ("GET", f"/api/folders/{DEFAULT_FOLDER_UID}"),
        ("POST", "/api/folders"),
        ("POST", "/api/dashboards/db"),
    ]
    assert st.requests[1].headers["Authorization"] == _basic("admin", st.password)
    assert st.calls("POST", "/api/folders")[0].body == {"uid": DEFAULT_FOLDER_UID, "title": "canarylab"}
    payload = st.calls("POST", "/api/dashboards/db")[0].body
    assert payload["overwrite"] is True
    assert payload["folderUid"] == DEFAULT_FOLDER_UID
    assert payload["dashboard"]["uid"] == UID
    assert payload["dashboard"]["id"] is None
    assert payload["dashboard"]["panels"] == build()["panels"]
    assert result.folder.created
    assert (result.uid, result.version) == (UID, 1)
    assert result.link(fake_grafana.url).startswith(f"{fake_grafana.url}/d/{UID}/")


def test_a_second_import_overwrites_in_place_and_reuses_the_folder(
    fake_grafana: FakeGrafana, state: Path
) -> None:
    client = _client(fake_grafana, state)
    first = import_dashboard(client, build())
    changed = {**build(), "title": "renamed"}
    second = import_dashboard(client, changed)

    st = fake_grafana.state
    assert len(st.calls("POST", "/api/folders")) == 1, "the folder is created once"
    assert not second.folder.created
    assert list(st.dashboards) == [UID], "still one dashboard"
    assert (first.version, second.version) == (1, 2)
    assert st.dashboards[UID]["dashboard"]["title"] == "renamed"
    assert st.dashboards[UID]["folderUid"] == DEFAULT_FOLDER_UID


def test_an_existing_dashboard_is_replaced_even_without_the_folder(
    fake_grafana: FakeGrafana, state: Path
) -> None:
    """Someone imported it by hand (version 5): ours replaces it, into our folder."""
    fake_grafana.state.dashboards[UID] = {
        "dashboard": {"uid": UID, "title": "old"},
        "folderUid": None,
        "version": 5,
    }
    result = import_dashboard(_client(fake_grafana, state), build())
    assert result.version == 6
    assert fake_grafana.state.dashboards[UID]["folderUid"] == DEFAULT_FOLDER_UID


def test_a_folder_with_our_title_and_another_uid_is_reused(fake_grafana: FakeGrafana, state: Path) -> None:
    """The lab's sidecar creates folder "canarylab" with a uid of its own: import goes there."""
    fake_grafana.state.folders["sidecar1"] = {"id": 9, "uid": "sidecar1", "title": "canarylab"}
    result = import_dashboard(_client(fake_grafana, state), build())
    assert result.folder.uid == "sidecar1"
    assert not result.folder.created
    assert fake_grafana.state.dashboards[UID]["folderUid"] == "sidecar1"
    assert len(fake_grafana.state.folders) == 1


def test_a_provisioned_dashboard_is_a_clear_error_and_a_copy_imports(
    fake_grafana: FakeGrafana,
    state: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_grafana.state.provisioned.add(UID)
    with pytest.raises(CanarylabError, match="provisions dashboard canarylab-latency from a file") as err:
        import_dashboard(_client(fake_grafana, state), build())
    assert err.value.hint
    assert "--uid" in err.value.hint
    monkeypatch.setenv("CANARYLAB_ROOT", str(state.parent))
    for var in ("GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert main(["dashboard", "import", "--grafana-url", fake_grafana.url, "--uid", "canarylab-copy"]) == 0
    assert fake_grafana.state.dashboards["canarylab-copy"]["dashboard"]["title"].endswith("(canarylab-copy)")
    assert "dashboard canarylab-copy version 1" in capsys.readouterr().out


def test_token_from_the_environment_is_sent_as_bearer(fake_grafana: FakeGrafana, tmp_path: Path) -> None:
    env = {"GRAFANA_TOKEN": fake_grafana.state.token}
    import_dashboard(GrafanaClient(fake_grafana.url, find_credentials(env, tmp_path)), build())
    auth = {r.headers.get("Authorization") for r in fake_grafana.state.requests if r.path != "/api/health"}
    assert auth == {f"Bearer {fake_grafana.state.token}"}


def test_user_and_password_from_the_environment(fake_grafana: FakeGrafana, tmp_path: Path) -> None:
    env = {"GRAFANA_USER": "admin", "GRAFANA_PASSWORD": fake_grafana.state.password}
    import_dashboard(GrafanaClient(fake_grafana.url, find_credentials(env, tmp_path)), build())
    assert fake_grafana.state.requests[-1].headers["Authorization"] == _basic(
        "admin", fake_grafana.state.password
    )


def test_credentials_precedence_and_gaps(tmp_path: Path) -> None:
    (tmp_path / PASSWORD_FILE).write_text("from-file\n")
    assert find_credentials({"GRAFANA_TOKEN": "t", "GRAFANA_USER": "u"}, tmp_path).token == "t"
    assert find_credentials({}, tmp_path).password == "from-file"
    with pytest.raises(CanarylabError, match="set together"):
        find_credentials({"GRAFANA_USER": "u"}, tmp_path)
    with pytest.raises(CanarylabError, match="no Grafana credentials") as err:
        find_credentials({}, tmp_path / "missing")
    assert err.value.hint
    assert "GRAFANA_TOKEN" in err.value.hint


def test_wrong_password_is_a_401_naming_where_it_came_from(fake_grafana: FakeGrafana, state: Path) -> None:
    (state / PASSWORD_FILE).write_text("wrong\n")
    with pytest.raises(
        CanarylabError, match=r"rejected the credentials .*grafana-admin-password \(HTTP 401\)"
    ):
        import_dashboard(_client(fake_grafana, state), build())
    assert not fake_grafana.state.dashboards


def test_401_from_a_forced_server_mentions_the_token(fake_grafana: FakeGrafana, tmp_path: Path) -> None:
    client = GrafanaClient(fake_grafana.url, find_credentials({"GRAFANA_TOKEN": "x"}, tmp_path))
    fake_grafana.state.force_status = 401
    with pytest.raises(CanarylabError, match="HTTP 401") as err:
        client.ensure_folder("f", "F")
    assert "GRAFANA_TOKEN" in str(err.value)


def test_404_says_the_url_is_not_grafanas_root(fake_grafana: FakeGrafana, state: Path) -> None:
    fake_grafana.state.force_status = 404
    with pytest.raises(CanarylabError, match=r"has no /api/health \(HTTP 404") as err:
        import_dashboard(_client(fake_grafana, state), build())
    assert "root URL" in str(err.value)


def test_404_under_a_wrong_sub_path(fake_grafana: FakeGrafana, state: Path) -> None:
    client = GrafanaClient(fake_grafana.url + "/grafana", find_credentials({}, state))
    with pytest.raises(CanarylabError, match="HTTP 404"):
        import_dashboard(client, build())


def test_refused_connection(port: int, state: Path) -> None:
    client = GrafanaClient(f"http://127.0.0.1:{port}", find_credentials({}, state), timeout=3)
    with pytest.raises(CanarylabError, match=r"cannot connect to Grafana at http://127\.0\.0\.1:") as err:
        import_dashboard(client, build())
    assert err.value.hint
    assert "--grafana-url" in err.value.hint


def test_annotation_request(fake_grafana: FakeGrafana, state: Path) -> None:
    ident = _client(fake_grafana, state).annotate(
        "load start", ["canarylab", "phase:start"], 1_700_000_000_123
    )
    assert ident == 1
    assert fake_grafana.state.annotations == [
        {"time": 1_700_000_000_123, "tags": ["canarylab", "phase:start"], "text": "load start"}
    ]


# --- the command line ------------------------------------------------------------


def test_cli_import_twice(
    fake_grafana: FakeGrafana,
    state: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANARYLAB_ROOT", str(state.parent))
    for var in ("GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert main(["dashboard", "import", "--grafana-url", fake_grafana.url]) == 0
    assert main(["dashboard", "import", "--grafana-url", fake_grafana.url]) == 0
    out = capsys.readouterr().out
    assert "folder 'canarylab' (canarylab): created" in out
    assert "folder 'canarylab' (canarylab): found" in out
    assert f"dashboard {UID} version 2: {fake_grafana.url}/d/{UID}/" in out
    assert fake_grafana.state.dashboards[UID]["version"] == 2


@pytest.mark.parametrize("problem", ["401", "404", "refused"])
def test_cli_errors_exit_2_with_a_message(
    problem: str,
    fake_grafana: FakeGrafana,
    state: Path,
    port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANARYLAB_ROOT", str(state.parent))
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    monkeypatch.delenv("GRAFANA_USER", raising=False)
    monkeypatch.delenv("GRAFANA_PASSWORD", raising=False)
    url = fake_grafana.url
    expected = {"401": "HTTP 401", "404": "HTTP 404", "refused": "cannot connect"}[problem]
    if problem == "refused":
        url = f"http://127.0.0.1:{port}"
    else:
        fake_grafana.state.force_status = int(problem)
    assert main(["dashboard", "import", "--grafana-url", url]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "->" in err, "the error says what to do next"
