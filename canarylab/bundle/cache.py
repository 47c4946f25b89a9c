"""The bundle's cache: one directory per item and cache key, written once, atomically.

Layout, under ``$CANARYLAB_CACHE/bundle`` (``${XDG_CACHE_HOME:-~/.cache}/canarylab/bundle``)::

    <item>/<version>-<key[:16]>/   the item's files (binaries, or image.tar) and item.json
    <item>/.tmp-…/                 a build in progress (removed on failure; never read)
    manifest.json                  every item of the last run (see manifest.py)

The key is a sha256 over the recipe (:data:`RECIPE`), the item's definition
(version, source, binaries, ldflags, image name; for wheels the target Python
and platform tags), every committed file of its project directory (go.mod,
go.sum, tools.go, the Containerfile, or the wheels' hash lock), the toolchain
that builds it (``go version``, ``gcc --version``, the base image's ID, ``pip
--version``), and, for an image or the chart, the sha256 of each file it takes
from another item (the chart: the bundle's helm).  Change any of
these and the item is built again; otherwise it is reused.  ``item.json`` is
written last, so a directory without it is not an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canarylab.bundle.items import Item
from canarylab.errors import CanarylabError

#: Bump when the way items are built changes without any committed input changing.
RECIPE = "canarylab-bundle/1"
#: Item fields added after the first bundle (for the wheels): left out of an item's
#: definition while empty, so the keys of the items that do not use them stay as they were.
LATER_FIELDS = ("python", "platforms", "extract", "chart")
ITEM_JSON = "item.json"
CHUNK = 1 << 20


def bundle_root() -> Path:
    """``$CANARYLAB_CACHE/bundle``; CANARYLAB_CACHE defaults as in scripts/env.sh."""
    cache = os.environ.get("CANARYLAB_CACHE")
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = str(Path(xdg) / "canarylab")
    return Path(cache) / "bundle"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def project_files(root: Path, project: Path) -> list[Path]:
    """The committed files of an item's project directory, sorted (hidden files excluded)."""
    base = root / project
    if not base.is_dir():
        raise CanarylabError(f"{project} is missing", "the scratch modules live in bundle/ of the checkout")
    return sorted(
        p for p in base.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)
    )


def cache_key(
    item: Item,
    root: Path,
    toolchain: str,
    input_hashes: Mapping[str, str] | None = None,
) -> str:
    """The item's cache key (64 hex).  ``input_hashes``: ``item/file`` -> sha256, for images."""
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    feed("recipe", RECIPE.encode())
    definition = asdict(item)
    definition["project"] = item.project.as_posix()
    for name in LATER_FIELDS:
        if not definition[name]:
            del definition[name]
    feed("item", json.dumps(definition, sort_keys=True).encode())
    for path in project_files(root, item.project):
        feed(f"file:{path.relative_to(root / item.project).as_posix()}", path.read_bytes())
    feed("toolchain", toolchain.encode())
    for name, digest in sorted((input_hashes or {}).items()):
        feed(f"input:{name}", digest.encode())
    return h.hexdigest()


@dataclass
class FileEntry:
    path: str  # relative to the entry's directory
    sha256: str
    size: int


@dataclass
class Entry:
    """What item.json records about one built item."""

    name: str
    kind: str
    version: str
    source: str
    key: str
    toolchain: str
    build_seconds: float
    files: list[FileEntry] = field(default_factory=list)
    #: For images: reference, image ID (config digest, as ``ctr images ls`` shows it) and archive format.
    image: dict[str, str] = field(default_factory=dict)

    def file(self, name: str) -> FileEntry:
        for f in self.files:
            if f.path == name:
                return f
        raise CanarylabError(f"bundle item {self.name} has no file {name}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        files = [FileEntry(**f) for f in data.get("files", [])]
        fields = {k: v for k, v in data.items() if k != "files"}
        return cls(files=files, **fields)


class TamperedError(CanarylabError):
    """A cached or manifested file whose sha256 is not the recorded one."""


class ItemCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry_dir(self, item: Item, key: str) -> Path:
        return self.root / item.name / f"{item.version}-{key[:16]}"

    def lookup(self, item: Item, key: str) -> Entry | None:
        """The entry for ``key``, verified file by file; None if not built.  Refuses a changed file."""
        d = self.entry_dir(item, key)
        meta = d / ITEM_JSON
        if not meta.is_file():
            return None
        entry = Entry.from_json(json.loads(meta.read_text()))
        if entry.key != key:
            raise TamperedError(
                f"{meta} records key {entry.key[:16]}…, not {key[:16]}…",
                f"remove {d} and build again: canarylab bundle build --only {item.name}",
            )
        verify_files(d, entry.files, item.name)
        return entry

    def store(
        self,
        item: Item,
        *,
        key: str,
        toolchain: str,
        build_seconds: float,
        built_in: Path,
        files: Iterable[str],
        image: Mapping[str, str] | None = None,
    ) -> Entry:
        """Record the files built in ``built_in`` (a temp dir under the item's cache) and move it in place."""
        entry = Entry(
            item.name, item.kind, item.version, item.source, key, toolchain, round(build_seconds, 1)
        )
        for name in files:
            p = built_in / name
            if not p.is_file():
                raise CanarylabError(f"the build of {item.name} did not produce {name}")
            entry.files.append(FileEntry(name, sha256_file(p), p.stat().st_size))
        entry.image = dict(image or {})
        (built_in / ITEM_JSON).write_text(json.dumps(entry.to_json(), indent=2) + "\n")
        final = self.entry_dir(item, key)
        if final.exists():
            shutil.rmtree(final)
        built_in.rename(final)
        return entry

    def tmp_dir(self, item: Item, key: str) -> Path:
        d = self.root / item.name / f".tmp-{key[:16]}-{os.getpid()}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file() and not p.is_symlink())


def verify_files(base: Path, files: Iterable[FileEntry], what: str) -> None:
    for f in files:
        p = base / f.path
        if not p.is_file():
            raise TamperedError(
                f"{what}: {p} is missing",
                f"build it again: canarylab bundle build --only {what}",
            )
        size = p.stat().st_size
        digest = sha256_file(p)
        if size != f.size or digest != f.sha256:
            raise TamperedError(
                f"{what}: {p} has sha256 {digest[:16]}… ({size} bytes), "
                f"recorded {f.sha256[:16]}… ({f.size} bytes): refused",
                f"remove {p.parent} and build again: canarylab bundle build --only {what}",
            )
