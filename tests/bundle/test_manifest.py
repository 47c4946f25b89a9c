"""manifest.json: every file with its sha256, verified before it is trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from canarylab.bundle import manifest
from canarylab.bundle.cache import ItemCache, TamperedError
from canarylab.bundle.items import Item
from canarylab.cli import main
from canarylab.errors import CanarylabError

from .conftest import FakeBuilder, make_run


def _built(cache: ItemCache, items: list[Item]) -> Path:
    run, _ = make_run(cache, FakeBuilder())
    return run.build(items)


def test_manifest_lists_every_file_with_its_sha256(cache: ItemCache, items: list[Item]) -> None:
    path = _built(cache, items)
    data = json.loads(path.read_text())
    assert data["complete"] is True
    assert data["missing"] == []
    assert [i["name"] for i in data["items"]] == [i.name for i in items]
    for entry in data["items"]:
        assert entry["source"]
        assert entry["version"]
        assert len(entry["key"]) == 64
        for f in entry["files"]:
            blob = (path.parent / f["path"]).read_bytes()
            assert hashlib.sha256(blob).hexdigest() == f["sha256"]
            assert len(blob) == f["size"]
    images = {i["image"]["ref"] for i in data["items"] if i["kind"] == "image"}
    assert "registry.k8s.io/pause:3.10" in images
    assert manifest.verify(path) == data


@pytest.mark.parametrize("how", ["change", "remove", "grow"])
def test_a_tampered_file_is_refused(cache: ItemCache, items: list[Item], how: str) -> None:
    path = _built(cache, items)
    data = json.loads(path.read_text())
    target = path.parent / data["items"][0]["files"][0]["path"]
    if how == "change":
        text = target.read_text()
        target.write_text(text.replace("v", "w", 1))  # same size, other bytes
    elif how == "remove":
        target.unlink()
    else:
        target.write_text(target.read_text() + "x")
    with pytest.raises(TamperedError):
        manifest.verify(path)


def test_the_verify_command_refuses_a_tampered_bundle(
    cache: ItemCache, items: list[Item], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _built(cache, items)
    assert main(["bundle", "verify", "--manifest", str(path)]) == 0
    assert "every sha256 matches" in capsys.readouterr().out
    data = json.loads(path.read_text())
    archive = next(i for i in data["items"] if i["name"] == "image-coredns")["files"][0]["path"]
    (path.parent / archive).write_bytes(b"something else")
    assert main(["bundle", "verify", "--manifest", str(path)]) == 2
    err = capsys.readouterr().err
    assert "image-coredns" in err
    assert "canarylab bundle build --only image-coredns" in err
    assert f"remove {(path.parent / archive).parent} " in err  # the entry, not the whole bundle


def test_a_partial_bundle_is_marked_incomplete(cache: ItemCache, items: list[Item]) -> None:
    run, _ = make_run(cache, FakeBuilder())
    path = run.build(items, only=["image-pause"])
    data = json.loads(path.read_text())
    assert data["complete"] is False
    assert "kubernetes" in data["missing"]
    assert {i["name"] for i in data["items"]} == {"pause", "image-pause"}
    with pytest.raises(CanarylabError, match="incomplete"):
        manifest.verify(path)
    manifest.verify(path, require_complete=False)


def test_a_foreign_file_is_not_a_manifest(tmp_path: Path) -> None:
    p = tmp_path / "manifest.json"
    p.write_text('{"schema": 99}')
    with pytest.raises(CanarylabError, match="schema"):
        manifest.verify(p)
