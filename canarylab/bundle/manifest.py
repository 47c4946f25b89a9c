"""``manifest.json`` of the bundle: every file and image archive with its sha256.

The roles' offline path reads it (a later slice of issue 13).  Shape::

    {"schema": 1, "recipe": "...", "complete": true, "missing": [],
     "items": [{"name": "kubernetes", "kind": "go", "version": "v1.32.10",
                "source": "k8s.io/kubernetes@v1.32.10", "key": "<64 hex>",
                "toolchain": "...", "build_seconds": 348.1,
                "files": [{"name": "kubeadm", "path": "kubernetes/v1.32.10-<key16>/kubeadm",
                           "sha256": "<64 hex>", "size": 123}],
                "image": {}}, ...,
               {"name": "image-pause", "kind": "image", ...,
                "files": [{"name": "image.tar", "path": "image-pause/3.10-…/image.tar", ...}],
                "image": {"ref": "registry.k8s.io/pause:3.10", "id": "sha256:…",
                          "archive": "docker-archive"}}]}

Paths are relative to the manifest's directory, so the bundle can be copied
elsewhere whole.  :func:`verify` re-hashes every file and refuses any change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from canarylab.bundle.cache import RECIPE, Entry, FileEntry, TamperedError, verify_files
from canarylab.errors import CanarylabError

SCHEMA = 1
MANIFEST = "manifest.json"


def manifest_json(
    root: Path, entries: Sequence[tuple[Path, Entry]], missing: Sequence[str]
) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for entry_dir, entry in entries:
        rel = entry_dir.relative_to(root).as_posix()
        data = entry.to_json()
        data["files"] = [
            {"name": f.path, "path": f"{rel}/{f.path}", "sha256": f.sha256, "size": f.size}
            for f in entry.files
        ]
        items.append(data)
    return {
        "schema": SCHEMA,
        "recipe": RECIPE,
        "complete": not missing,
        "missing": list(missing),
        "items": items,
    }


def write(root: Path, entries: Sequence[tuple[Path, Entry]], missing: Sequence[str] = ()) -> Path:
    """Write ``root/manifest.json`` atomically; returns its path."""
    path = root / MANIFEST
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest_json(root, entries, missing), indent=2) + "\n")
    tmp.replace(path)
    return path


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CanarylabError(
            f"cannot read the bundle manifest {path}: {err}", "canarylab bundle build"
        ) from err
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise CanarylabError(
            f"{path} is not a bundle manifest of schema {SCHEMA}", "build it again: canarylab bundle build"
        )
    return data


def verify(path: Path, *, require_complete: bool = True) -> dict[str, Any]:
    """Check every file of the manifest against its sha256 and size; return the manifest.

    Raises :class:`TamperedError` for a changed or missing file, and
    :class:`CanarylabError` for an incomplete bundle when ``require_complete``.
    """
    data = load(path)
    if require_complete and not data.get("complete"):
        raise CanarylabError(
            f"the bundle in {path.parent} is incomplete: {', '.join(data.get('missing', []))} not built",
            "canarylab bundle build",
        )
    base = path.parent
    for item in data["items"]:
        files = [FileEntry(f["path"], f["sha256"], f["size"]) for f in item["files"]]
        try:
            verify_files(base, files, item["name"])
        except TamperedError as err:
            raise TamperedError(f"bundle manifest {path}: {err.message}", err.hint) from err
    return data
