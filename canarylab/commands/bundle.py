"""`canarylab bundle build|verify|list`: the container lab's offline bundle (docs/bundle.md).

``build`` builds (or finds cached) Kubernetes, etcd, CoreDNS, pause, flannel, its
CNI plugin, MetalLB, helm and their images, MetalLB's chart, and the wheelhouse
of the Python kubernetes client, from the Go module proxy, Debian's packages and
PyPI, into ``$CANARYLAB_CACHE/bundle``, and writes its manifest.json.
``verify`` re-hashes every file the manifest lists.  ``list`` prints the items.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from canarylab.paths import project_root


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bundle",
        help="build and verify the container lab's offline bundle (binaries, images, manifest)",
        description="The container lab's offline bundle: Kubernetes and its add-ons built from reachable "
        "sources at the pinned versions, cached by version under $CANARYLAB_CACHE/bundle (docs/bundle.md).",
    )
    bsub = p.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)

    b = bsub.add_parser(
        "build",
        help="build every item not yet cached, then write manifest.json",
        description="Builds each item at nice -n 19 unless its cache entry (version + committed scratch "
        "module + toolchain) exists; a second run only checks the cache.  Needs Go, gcc, podman and pip; the "
        "Debian-based images need scripts/build-base-image.sh first.",
    )
    b.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="build only this item and what it needs (repeatable); see `canarylab bundle list`",
    )
    b.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="items built at once (default 1: one go build already uses every core)",
    )
    b.set_defaults(func=_build)

    v = bsub.add_parser(
        "verify",
        help="re-hash every file of the bundle's manifest; refuse any change",
        description="Checks each file and image archive of manifest.json against its sha256 and size.",
    )
    v.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="the manifest to check (default: $CANARYLAB_CACHE/bundle/manifest.json)",
    )
    v.set_defaults(func=_verify)

    ls = bsub.add_parser("list", help="print the bundle's items, versions and sources")
    ls.set_defaults(func=_list)


def _build(args: argparse.Namespace) -> int:
    from canarylab.bundle.builders import RealBuilder  # noqa: PLC0415
    from canarylab.bundle.cache import ItemCache, bundle_root  # noqa: PLC0415
    from canarylab.bundle.items import bundle_items, load_pins  # noqa: PLC0415
    from canarylab.bundle.run import BundleRun  # noqa: PLC0415

    root = project_root()
    cache_root = bundle_root()
    cache_root.mkdir(parents=True, exist_ok=True)
    items = bundle_items(load_pins(root))
    start = time.monotonic()
    run = BundleRun(root, ItemCache(cache_root), RealBuilder(root, cache_root / "logs"), sys.stdout)
    path = run.build(items, args.only, args.jobs)
    built = [o for o in run.done.values() if not o.cached]
    print(
        f"bundle: {len(run.done)} of {len(items)} items ready ({len(built)} built, "
        f"{len(run.done) - len(built)} cached) in {time.monotonic() - start:.1f} s; "
        f"cache {cache_root} {ItemCache(cache_root).size() / 1e9:.2f} GB"
    )
    print(f"manifest: {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from canarylab.bundle import manifest  # noqa: PLC0415
    from canarylab.bundle.cache import bundle_root  # noqa: PLC0415

    path = args.manifest or bundle_root() / manifest.MANIFEST
    data = manifest.verify(path)
    files = sum(len(i["files"]) for i in data["items"])
    print(f"bundle manifest {path}: {len(data['items'])} items, {files} files, every sha256 matches")
    return 0


def _list(_args: argparse.Namespace) -> int:
    from canarylab.bundle.items import bundle_items, load_pins  # noqa: PLC0415

    for item in bundle_items(load_pins(project_root())):
        if item.kind == "chart":
            what = item.chart_file
        elif item.kind == "wheels":
            what = f"wheels for cp{item.python.replace('.', '')} {item.platforms[0]}"
        else:
            what = item.image or ", ".join(b.name for b in item.binaries)
        print(f"{item.name:28} {item.version:12} {what}  <- {item.source}")
    return 0
