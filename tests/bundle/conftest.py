"""A fake builder for the bundle's bookkeeping tests: it writes small files, fast."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pytest

from canarylab.bundle.builders import IMAGE_ARCHIVE, BuildResult
from canarylab.bundle.cache import ItemCache
from canarylab.bundle.items import Item, bundle_items, load_pins
from canarylab.bundle.run import BundleRun

ROOT = Path(__file__).resolve().parents[2]


class FakeBuilder:
    def __init__(self, toolchain: str = "fake-go 1.0", fail: str = "", stamp: str = "") -> None:
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
        for b in item.binaries:
            (out / b.name).write_text(f"{b.name} {item.version} {' '.join(b.ldflags)}{self.stamp}\n")
        return BuildResult([b.name for b in item.binaries])


@pytest.fixture
def items() -> list[Item]:
    return bundle_items(load_pins(ROOT))


@pytest.fixture
def cache(tmp_path: Path) -> ItemCache:
    return ItemCache(tmp_path / "bundle")


def make_run(cache: ItemCache, builder: FakeBuilder, root: Path = ROOT) -> tuple[BundleRun, io.StringIO]:
    out = io.StringIO()
    return BundleRun(root, cache, builder, out), out
