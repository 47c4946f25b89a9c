"""The bundle's cache: built once per key, reused after, rebuilt when an input changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from canarylab.bundle.cache import ItemCache, TamperedError, bundle_root, cache_key
from canarylab.bundle.items import Item, select
from canarylab.errors import CanarylabError

from .conftest import ROOT, FakeBuilder, make_run


def test_second_run_is_cached(cache: ItemCache, items: list[Item]) -> None:
    builder = FakeBuilder()
    run, out = make_run(cache, builder)
    run.build(items)
    assert builder.built == [i.name for i in items]
    assert "built in" in out.getvalue()

    again = FakeBuilder()
    run2, out2 = make_run(cache, again)
    run2.build(items)
    assert again.built == []
    lines = out2.getvalue().splitlines()
    assert len(lines) == len(items)
    assert all(": cached (" in line for line in lines)


def test_only_builds_the_item_and_its_inputs(cache: ItemCache, items: list[Item]) -> None:
    builder = FakeBuilder()
    run, _ = make_run(cache, builder)
    run.build(items, only=["image-metallb-speaker"])
    assert builder.built == ["metallb", "image-metallb-speaker"]
    assert [i.name for i in select(items, ["image-pause"])] == ["pause", "image-pause"]
    with pytest.raises(CanarylabError, match="no bundle item named nope"):
        run.build(items, only=["nope"])


def test_jobs_build_the_same(cache: ItemCache, items: list[Item]) -> None:
    builder = FakeBuilder()
    run, _ = make_run(cache, builder)
    run.build(items, jobs=3)
    assert sorted(builder.built) == sorted(i.name for i in items)
    with pytest.raises(CanarylabError, match="--jobs"):
        run.build(items, jobs=0)


def _copy_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "bundle", root / "bundle")
    return root


def test_key_follows_the_committed_module_and_toolchain(tmp_path: Path, items: list[Item]) -> None:
    root = _copy_project(tmp_path)
    k8s = next(i for i in items if i.name == "kubernetes")
    key = cache_key(k8s, root, "go1")
    assert key == cache_key(k8s, root, "go1")
    assert key != cache_key(k8s, root, "go2")
    gomod = root / "bundle" / "kubernetes" / "go.mod"
    gomod.write_text(gomod.read_text() + "\n// changed\n")
    assert key != cache_key(k8s, root, "go1")


def test_a_changed_input_file_rebuilds_the_image(tmp_path: Path, items: list[Item]) -> None:
    root = _copy_project(tmp_path)
    cache = ItemCache(tmp_path / "bundle-cache")
    run, _ = make_run(cache, FakeBuilder(), root)
    run.build(items, only=["image-pause"])
    # pause is built from the kubernetes module that bundle/kubernetes/go.mod pins
    gomod = root / "bundle" / "kubernetes" / "go.mod"
    gomod.write_text(gomod.read_text() + "\n// changed\n")
    same = FakeBuilder()
    run2, _ = make_run(cache, same, root)
    run2.build(items, only=["image-pause"])
    # pause is rebuilt; the image only because its input's sha256 changes, so an identical binary is reused
    assert same.built == ["pause"]
    gomod.write_text(gomod.read_text() + "\n// changed again\n")
    other = FakeBuilder(stamp=" other bytes")
    run3, _ = make_run(cache, other, root)
    run3.build(items, only=["image-pause"])
    assert other.built == ["pause", "image-pause"]


def test_a_failed_build_leaves_nothing(cache: ItemCache, items: list[Item]) -> None:
    run, _ = make_run(cache, FakeBuilder(fail="coredns"))
    with pytest.raises(RuntimeError, match="fake failure"):
        run.build(items, only=["coredns"])
    assert list((cache.root / "coredns").iterdir()) == []
    builder = FakeBuilder()
    run2, _ = make_run(cache, builder)
    run2.build(items, only=["coredns"])
    assert builder.built == ["coredns"]


def test_a_tampered_cache_entry_is_refused(cache: ItemCache, items: list[Item]) -> None:
    run, _ = make_run(cache, FakeBuilder())
    run.build(items, only=["etcd"])
    entry_dir = next((cache.root / "etcd").iterdir())
    (entry_dir / "etcd").write_text("not etcd\n")
    run2, _ = make_run(cache, FakeBuilder())
    with pytest.raises(TamperedError, match="refused") as err:
        run2.build(items, only=["etcd"])
    assert err.value.hint is not None
    assert "canarylab bundle build --only etcd" in err.value.hint


def test_bundle_root_follows_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CANARYLAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bundle_root() == tmp_path / "xdg" / "canarylab" / "bundle"
    monkeypatch.setenv("CANARYLAB_CACHE", str(tmp_path / "c"))
    assert bundle_root() == tmp_path / "c" / "bundle"
