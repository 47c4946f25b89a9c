"""A fake builder for the bundle's bookkeeping tests: it writes small files, fast."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pytest

from canarylab.bundle.builders import IMAGE_ARCHIVE, BuildResult
from canarylab.bundle.cache import ItemCache
from canarylab.bundle.items import WHEELS_LOCK, Item, bundle_items, load_pins
from canarylab.bundle.run import BundleRun
from canarylab.bundle.wheels import locked_versions

ROOT = Path(__file__).resolve().parents[2]


class FakeBuilder:
    def __init__(
        self, toolchain: str = "fake-go 1.0", fail: str = "", stamp: str = "", root: Path = ROOT
    ) -> None:
        self.root = root
        self.built: list[str] = []
        self.stamp = stamp
        self._toolchain = toolchain
        self.fail = fail

    def toolchain(self, item: Item) -> str:
        return self._toolchain

    def build(self, item: Item, out: Path, inputs: Mapping[str, Path]) -> BuildResult:
        self.built.append(item.name)
        if item.name == self.fail:
            (out / "partial").write_text("half")
            raise RuntimeError(f"fake failure of {item.name}")
        if item.kind == "image":
            blob = b"".join(p.read_bytes() for _, p in sorted(inputs.items()))
            (out / IMAGE_ARCHIVE).write_bytes(b"archive of " + item.image.encode() + b"\n" + blob)
            return BuildResult([IMAGE_ARCHIVE], {"ref": item.image, "id": "sha256:" + "0" * 64})
        if item.kind == "chart":
            helm = inputs["helm/helm"].read_bytes()
            (out / item.chart_file).write_bytes(b"chart " + item.source.encode() + b" by " + helm)
            return BuildResult([item.chart_file])
        if item.kind == "wheels":
            # one "wheel" per locked project, named as pip names them
            lock = locked_versions((self.root / item.project / WHEELS_LOCK).read_text())
            names = [f"{n.replace('-', '_')}-{v}-py3-none-any.whl" for n, v in sorted(lock.items())]
            for name in names:
                (out / name).write_text(f"{name} for {item.platforms[0]}{self.stamp}\n")
            return BuildResult(names + self._extract(item, out))
        for b in item.binaries:
            (out / b.name).write_text(f"{b.name} {item.version} {' '.join(b.ldflags)}{self.stamp}\n")
        return BuildResult([b.name for b in item.binaries] + self._extract(item, out))

    def _extract(self, item: Item, out: Path) -> list[str]:
        for member, name in item.extract:
            (out / name).write_text(f"{member} of {item.source}{self.stamp}\n")
        return [name for _, name in item.extract]


@pytest.fixture
def items() -> list[Item]:
    return bundle_items(load_pins(ROOT))


@pytest.fixture
def cache(tmp_path: Path) -> ItemCache:
    return ItemCache(tmp_path / "bundle")


def make_run(cache: ItemCache, builder: FakeBuilder, root: Path = ROOT) -> tuple[BundleRun, io.StringIO]:
    out = io.StringIO()
    return BundleRun(root, cache, builder, out), out
