"""The real bundle build, end to end: opt-in, because a cold build takes 10+ minutes.

Run it with ``CANARYLAB_BUNDLE_TESTS=1 pytest -m bundle tests/bundle``.  It builds
(or finds cached) the whole bundle in the user's cache, verifies the manifest,
and checks what the binaries say about themselves: ``kubeadm version``,
``kubelet --version``, and that ``kubeadm config images list`` names exactly the
bundle's images; that helm is static and says v3.19.5; and, in a throw-away
container of the Debian 12 base image with no network (``podman run
--network=none``), that the MetalLB chart shows version 0.14.9 and renders, and
that the wheelhouse installs kubernetes into a venv of the nodes' Python 3.11
with ``pip install --no-index`` and imports.  Without the variable it is reported as skipped with that
reason in pytest's summary (``-ra``), never passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarylab.bundle.builders import base_image
from canarylab.bundle.cache import bundle_root
from canarylab.bundle.items import Item, kubeadm_images, load_pins

from .conftest import ROOT

#: The pinned Kubernetes version, as the binaries report it (v1.32.10).
K8S = "v" + str(
    yaml.safe_load((ROOT / "inventory/group_vars/all/versions.yml").read_text())["kubernetes_version"]
)

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.skipif(
        os.environ.get("CANARYLAB_BUNDLE_TESTS") != "1",
        reason="the real bundle build is opt-in (10+ minutes cold): set CANARYLAB_BUNDLE_TESTS=1",
    ),
]


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    canarylab = [sys.executable, "-m", "canarylab"]
    subprocess.run([*canarylab, "bundle", "build"], cwd=ROOT, check=True)
    subprocess.run([*canarylab, "bundle", "verify"], cwd=ROOT, check=True)
    data: dict[str, Any] = json.loads((bundle_root() / "manifest.json").read_text())
    return data


def _file(data: dict[str, Any], item: str, name: str) -> Path:
    entry = next(i for i in data["items"] if i["name"] == item)
    rel: str = next(f["path"] for f in entry["files"] if f["name"] == name)
    return bundle_root() / rel


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def _offline(script: str, *mounts: tuple[Path, str]) -> str:
    """Run ``script`` in a throw-away container of the Debian 12 base image, without any network."""
    volumes = [arg for host, inside in mounts for arg in ("-v", f"{host}:{inside}:ro")]
    argv = ["podman", "run", "--rm", "--network=none", *volumes, base_image(), "sh", "-ec", script]
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"{script}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _is_static_elf(path: Path) -> bool:
    """No PT_INTERP program header: the kernel runs it without a dynamic loader."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF"
    assert (data[4], data[5]) == (2, 1), "a 64-bit little-endian ELF"
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    types = [int.from_bytes(data[phoff + i * phentsize :][:4], "little") for i in range(phnum)]
    return 3 not in types  # PT_INTERP


def test_the_bundle_is_complete(built: dict[str, Any], items: list[Item]) -> None:
    assert built["complete"] is True
    assert [i["name"] for i in built["items"]] == [i.name for i in items]


def test_kubernetes_reports_its_pinned_version(built: dict[str, Any]) -> None:
    kubeadm = _file(built, "kubernetes", "kubeadm")
    assert _out([str(kubeadm), "version", "-o", "short"]) == K8S
    assert _out([str(_file(built, "kubernetes", "kubelet")), "--version"]) == f"Kubernetes {K8S}"
    assert K8S in _out([str(_file(built, "kubernetes", "kube-apiserver")), "--version"])


def test_kubeadm_lists_exactly_the_bundles_images(built: dict[str, Any], items: list[Item]) -> None:
    kubeadm = _file(built, "kubernetes", "kubeadm")
    listed = _out([str(kubeadm), "config", "images", "list", "--kubernetes-version", K8S]).split()
    assert sorted(listed) == kubeadm_images(items)


def test_helm_is_static_and_reports_its_pinned_version(built: dict[str, Any]) -> None:
    helm = _file(built, "helm", "helm")
    assert _is_static_elf(helm)
    assert _out([str(helm), "version", "--short"]) == str(load_pins(ROOT)["helm_version"])


def test_the_chart_shows_its_version_and_renders_offline(built: dict[str, Any]) -> None:
    helm = _file(built, "helm", "helm")
    chart = _file(built, "metallb-chart", "metallb-0.14.9.tgz")
    out = _offline(
        "export HELM_CACHE_HOME=/tmp/h HELM_CONFIG_HOME=/tmp/h HELM_DATA_HOME=/tmp/h; "
        "/helm show chart /chart.tgz; echo ---; /helm template metallb /chart.tgz --namespace metallb-system",
        (helm, "/helm"),
        (chart, "/chart.tgz"),
    )
    shown, rendered = out.split("\n---\n", 1)
    meta = yaml.safe_load(shown)
    assert (meta["name"], meta["version"], meta["appVersion"]) == ("metallb", "0.14.9", "v0.14.9")
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered) if d]
    assert "CustomResourceDefinition" in kinds  # the crds subchart is inside the archive
    assert {"Deployment", "DaemonSet"} <= set(kinds)  # controller and speaker


def test_the_wheelhouse_installs_offline_on_the_nodes_python(built: dict[str, Any]) -> None:
    entry = next(i for i in built["items"] if i["name"] == "python-kubernetes")
    wheelhouse = _file(built, "python-kubernetes", entry["files"][0]["name"]).parent
    version = entry["version"]
    out = _offline(
        "python3.11 -m venv /tmp/venv; "
        f"/tmp/venv/bin/pip install -q --no-index --find-links /wheels kubernetes=={version}; "
        "/tmp/venv/bin/pip check; "
        "/tmp/venv/bin/python -c 'import sys, kubernetes; from kubernetes import client, config; "
        "print(sys.version.split()[0], kubernetes.__version__)'",
        (wheelhouse, "/wheels"),
    )
    python, imported = out.splitlines()[-1].split()
    assert python.startswith(str(load_pins(ROOT)["bundle_node_python_version"]) + ".")
    assert imported == version
