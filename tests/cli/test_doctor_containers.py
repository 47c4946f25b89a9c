"""Doctor, container nodes (`nodes: containers`): every check's branches with fixture facts,
the facts gathered from fixture trees, and the real checks on this machine."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from canarylab.doctor import checks as c
from canarylab.doctor import containers as n
from canarylab.doctor.box import FAILED, NO_VAGRANT, VagrantConfig, _read_config, vagrant_config
from canarylab.doctor.facts import (
    ABSENT,
    BUILT_IN,
    LOADABLE,
    LOADED,
    BundleFacts,
    ContainerFacts,
    DockerFacts,
    HostFacts,
    bundle_dir,
    bundle_facts,
    cgroup_layout,
    docker_facts,
    gather_containers,
    module_state,
)
from canarylab.doctor.labsize import LabSize, SizeUnknown, lab_nodes, lab_size, load_lab_size
from canarylab.doctor.model import Check
from canarylab.doctor.run import container_lab_checks, lab_checks, run_doctor


def _machines(workers: int = 2) -> list[dict[str, object]]:
    controller = {"name": "cl-controller", "group": "controller", "ip": "192.168.56.10", "cpus": 2}
    return [{**controller, "memory": 3072}] + [
        {
            "name": f"cl-worker-{i}",
            "group": "workers",
            "ip": f"192.168.56.{10 + i}",
            "cpus": 2,
            "memory": 4096,
        }
        for i in range(1, workers + 1)
    ]


def _config(nodes: str | None = "containers", workers: int = 2, **values: object) -> VagrantConfig:
    """The Vagrantfile's CANARYLAB_CONFIG_JSON (nodes None: a Vagrantfile from before the key)."""
    written: dict[str, object] = {
        "provider": "docker" if nodes == "containers" else "libvirt",
        "os": "ubuntu",
        "box": "bento/ubuntu-24.04",
        "box_version": "202510.26.0",
        "box_from": "versions.yml",
        "version_from": "versions.yml",
        "machines": _machines(workers),
    }
    if nodes is not None:
        written["nodes"] = nodes
    return VagrantConfig(values={**written, **values})


def _sized(workers: int = 2) -> LabSize:
    size = lab_size(_config(workers=workers))
    assert isinstance(size, LabSize), size
    return size


SHIM = "/usr/bin/docker"
DOCKER = DockerFacts(
    shim=SHIM,
    shim_target=SHIM,
    shim_is_podman=True,
    link="/p/.cache/bin/docker",
    link_target=SHIM,
    first_on_path="/p/.cache/bin/docker",
    first_target=SHIM,
)
BUNDLE = BundleFacts("/c/bundle/manifest.json", exists=True, complete=True, items=21)


def _facts(**changes: object) -> ContainerFacts:
    """A host ready for container nodes (this CI's: hybrid cgroups, no /lib/modules), with ``changes``."""
    facts = ContainerFacts(
        system="Linux",
        euid=0,
        podman="podman version 4.3.1",
        runc="/usr/sbin/runc",
        runtime="runc",
        containers_conf="/p/containers/containers.conf",
        docker=DOCKER,
        cgroup="hybrid",
        bridge_nf=True,
        filesystems=frozenset({"overlay", "cgroup", "cgroup2", "tmpfs"}),
        kernel="6.1.0-13-amd64",
        modules={"br_netfilter": LOADED, "overlay": LOADED, "vxlan": LOADED},
        bundle=BUNDLE,
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


def _host(**changes: object) -> HostFacts:
    facts: dict[str, object] = {
        "system": "Linux",
        "cpus": 2,
        "memory_mb": 16000,
        "memory_kind": "available",
        "disk_free_gb": 100.0,
        "disk_where": "/root",
        "cpu_flags": frozenset({"fpu"}),  # no vmx/svm: the reason for container nodes
        "hv_support": None,
        "kvm_device": False,
        "vagrant": "2.3.4",
        "providers": [],
        "arch": "amd64",
    }
    return HostFacts(**{**facts, **changes})  # type: ignore[arg-type]


# --- which kind of node: the Vagrantfile's `nodes` ------------------------------------


def test_nodes_come_from_the_vagrantfile_and_default_to_vms() -> None:
    assert lab_nodes(_config("containers")) == "containers"
    assert lab_nodes(_config("vms")) == "vms"
    assert lab_nodes(_config(None)) == "vms"  # a Vagrantfile from before the key
    assert lab_nodes(VagrantConfig(unknown=NO_VAGRANT, message="vagrant is not installed")) == "vms"
    assert lab_nodes(_config("lxc")) is None
    assert _sized().nodes == "containers"
    vms = lab_size(_config(None))
    assert isinstance(vms, LabSize)
    assert vms.nodes == "vms"
    assert (_sized().controllers, _sized().workers) == (1, 2)
    wrong = lab_size(_config("lxc"))
    assert isinstance(wrong, SizeUnknown)
    assert "nodes 'lxc', not one of vms, containers" in wrong.message


def test_container_nodes_need_no_box_in_the_json() -> None:
    text = json.dumps({"nodes": "containers", "provider": "docker", "machines": _machines()})
    config = _read_config(text, 0, "")
    assert config.values is not None
    assert lab_nodes(config) == "containers"
    vms = _read_config(json.dumps({"provider": "libvirt", "machines": _machines()}), 0, "")
    assert (vms.values, vms.unknown) == (None, FAILED)
    assert "no box" in vms.message


def test_check_nodes_says_which_kind() -> None:
    assert c.check_nodes(_config("containers")).detail.startswith("containers: privileged podman containers")
    assert c.check_nodes(_config("vms")).detail == "vms: a provider below runs them"
    assert "the Vagrantfile does not say: VMs" in c.check_nodes(_config(None)).detail
    wrong = c.check_nodes(_config("lxc"))
    assert wrong.status == "fail"
    assert wrong.fix is not None
    assert "CANARYLAB_NODES" in wrong.fix


def test_without_vt_x_the_vm_lab_offers_container_nodes() -> None:
    check = c.check_virtualisation("Linux", frozenset({"fpu"}), None, None)
    assert check.status == "fail"
    assert check.fix is not None
    assert check.fix.startswith("enable VT-x/AMD-V in the BIOS/UEFI")
    assert "`canarylab up --nodes containers`" in check.fix
    assert "`nodes: containers` in lab.yml" in check.fix
    # macOS cannot run them (they share a Linux kernel); a warning needs no way out
    mac = c.check_virtualisation("Darwin", None, "0", None)
    assert mac.fix is not None
    assert "--nodes containers" not in mac.fix
    assert c.check_virtualisation("Linux", frozenset({"vmx"}), None, False).fix == (
        "load the module: sudo modprobe kvm_intel (or kvm_amd)"
    )


def test_vm_lab_checks_show_the_nodes_line_and_keep_the_vm_checks() -> None:
    found = {ch.name: ch for ch in lab_checks(_host(), _config("vms", provider="libvirt"), {})}
    assert {"nodes", "provider", "box", "virtualisation", "memory", "cpus", "disk"} <= set(found)
    assert found["virtualisation"].fix is not None
    assert "--nodes containers" in found["virtualisation"].fix
    unknown = lab_checks(_host(), VagrantConfig(unknown=NO_VAGRANT, message="vagrant is not installed"), {})
    assert "nodes" not in {ch.name for ch in unknown}  # no answer: nothing to say about the kind


def test_container_lab_checks_skip_the_vm_only_checks() -> None:
    found = [ch.name for ch in container_lab_checks(_host(), _config(), _facts())]
    assert found == [
        "vagrant",
        "nodes",
        "linux",
        "root",
        "podman",
        "runc",
        "docker-shim",
        "cgroup",
        "br_netfilter",
        "overlay",
        "vxlan",
        "memory",
        "bundle",
    ]
    checks = container_lab_checks(_host(), _config(), _facts())
    assert [ch for ch in checks if ch.status != "ok"] == []
    vagrant = container_lab_checks(_host(vagrant=None), _config(), _facts())[0]
    assert (vagrant.name, vagrant.status) == ("vagrant", "fail")  # its docker provider starts the nodes


# --- each check's branches --------------------------------------------------------------


@pytest.mark.parametrize("system", ["Darwin", "Windows"])
def test_container_nodes_need_linux(system: str) -> None:
    found = n.container_node_checks(_facts(system=system), _sized(), 16000)
    assert [(ch.name, ch.status) for ch in found] == [("linux", "fail")]
    assert found[0].fix is not None
    assert "`nodes: vms` in lab.yml (or CANARYLAB_NODES=vms)" in found[0].fix
    assert system in found[0].detail


def test_root() -> None:
    assert n.check_root(0).status == "ok"
    user = n.check_root(1000)
    assert user.status == "fail"
    assert "uid 1000" in user.detail
    assert "privileged rootful" in user.detail
    assert n.check_root(None).status == "fail"


def test_podman_missing_old_and_current() -> None:
    missing = n.check_podman(None)
    assert missing.status == "fail"
    assert missing.fix is not None
    assert "apt install podman podman-docker runc" in missing.fix
    assert n.check_podman("podman version 3.4.4").status == "warn"
    assert n.check_podman("podman version 4.3.1") == Check("podman", "ok", "podman version 4.3.1")
    assert n.check_podman("podman version 5.4.2").status == "ok"


def test_runc_missing_not_used_and_used() -> None:
    assert n.check_runc(None, "crun", None).status == "fail"
    crun = n.check_runc("/usr/sbin/runc", "crun\n", None)
    assert crun.status == "warn"
    assert "podman runs crun (CONTAINERS_CONF: unset)" in crun.detail
    assert crun.fix is not None
    assert "scripts/env.sh" in crun.fix
    assert n.check_runc("/usr/sbin/runc", "runc", "/p/containers/containers.conf").status == "ok"
    assert n.check_runc("/usr/sbin/runc", None, None).detail.endswith("podman's runtime: unknown")


def test_docker_shim_ok() -> None:
    check = n.check_docker_shim(DOCKER)
    assert (check.status, check.detail) == (
        "ok",
        f"/p/.cache/bin/docker -> {SHIM} (podman-docker), first on PATH",
    )


def test_docker_shim_missing_or_docker_s_own_cli() -> None:
    missing = n.check_docker_shim(replace(DOCKER, shim=None, shim_target=None, shim_is_podman=False))
    assert missing.status == "fail"
    assert "podman-docker is not installed" in missing.detail
    cli = n.check_docker_shim(replace(DOCKER, shim_is_podman=False))
    assert cli.status == "fail"
    assert "Docker's own CLI" in cli.detail


def test_docker_shim_link_missing_or_elsewhere() -> None:
    missing = n.check_docker_shim(replace(DOCKER, link_target=None))
    assert missing.status == "fail"
    assert missing.detail == "/p/.cache/bin/docker is missing: the Vagrantfile runs the docker there"
    assert missing.fix is not None
    assert "make setup" in missing.fix
    elsewhere = n.check_docker_shim(replace(DOCKER, link_target="/usr/local/bin/docker"))
    assert "leads to /usr/local/bin/docker" in elsewhere.detail


def test_another_docker_first_on_path_warns_with_the_fix() -> None:
    other = replace(DOCKER, first_on_path="/usr/local/bin/docker", first_target="/usr/local/bin/docker")
    check = n.check_docker_shim(other)
    assert check.status == "warn"
    assert "the first docker on your PATH is /usr/local/bin/docker" in check.detail
    assert check.fix is not None
    assert "`. scripts/env.sh`" in check.fix
    assert "remove /usr/local/bin/docker from PATH" in check.fix
    # /bin/docker on a merged /usr is the shim itself: fine
    merged = n.check_docker_shim(replace(DOCKER, first_on_path="/bin/docker", first_target=SHIM))
    assert merged.status == "ok"
    none = n.check_docker_shim(replace(DOCKER, first_on_path=None, first_target=None))
    assert none.status == "warn"


@pytest.mark.parametrize(("layout", "status"), [("v2", "ok"), ("hybrid", "ok"), ("v1", "ok"), (None, "fail")])
def test_cgroup(layout: str | None, status: str) -> None:
    assert n.check_cgroup(layout).status == status


def test_bridge_netfilter() -> None:
    assert n.check_bridge_netfilter(True, None).status == "ok"
    loadable = n.check_bridge_netfilter(False, LOADABLE)
    assert loadable.status == "fail"
    assert "a module to load" in loadable.detail
    assert loadable.fix is not None
    assert loadable.fix.startswith("sudo modprobe br_netfilter")
    absent = n.check_bridge_netfilter(False, ABSENT)
    assert absent.fix is not None
    assert "this kernel has no br_netfilter" in absent.fix
    assert "nodes: vms" in absent.fix
    unknown = n.check_bridge_netfilter(False, None)
    assert (unknown.status, "module: unknown" in unknown.detail) == ("fail", True)


def test_overlay() -> None:
    assert n.check_overlay(frozenset({"overlay"}), None).status == "ok"
    missing = n.check_overlay(frozenset({"ext4"}), LOADABLE)
    assert missing.status == "fail"
    assert missing.fix is not None
    assert "sudo modprobe overlay" in missing.fix
    assert n.check_overlay(None, None).status == "warn"


def test_vxlan_is_checked_where_it_can_be() -> None:
    assert n.check_vxlan(LOADED, "6.1").status == "ok"
    assert n.check_vxlan(BUILT_IN, "6.1").detail == "vxlan built-in"
    assert n.check_vxlan(LOADABLE, "6.1").status == "ok"
    assert n.check_vxlan(ABSENT, "6.1").status == "fail"
    unknown = n.check_vxlan(None, "6.18.44-fc")
    assert unknown.status == "warn"
    assert "cannot check" in unknown.detail
    assert "/lib/modules/6.18.44-fc" in unknown.detail


def test_memory_against_the_measured_nodes() -> None:
    lab = _sized(workers=2)  # 2700 + 2 x 1900 = 6500 MB, whatever the VMs' memory says
    assert n.container_memory_mb(lab) == 6500
    assert n.check_container_memory(lab, 6000).status == "fail"
    assert n.check_container_memory(lab, 8000).status == "warn"  # < 2048 MB left for the host
    ok = n.check_container_memory(lab, 9000)
    assert ok.status == "ok"
    assert ok.detail == (
        "9000 MB available, the nodes need about 6500 MB "
        "(1 controller x 2700 MB + 2 workers x 1900 MB, measured on container nodes)"
    )
    one = n.check_container_memory(_sized(workers=1), 9000)
    assert "4600 MB (1 controller x 2700 MB + 1 worker x 1900 MB" in one.detail
    fix = n.check_container_memory(lab, 6000).fix
    assert fix is not None
    assert "CANARYLAB_WORKERS=1" in fix
    assert n.check_container_memory(lab, None).status == "warn"
    unknown = n.check_container_memory(SizeUnknown(FAILED, "why"), 9000)
    assert (unknown.status, unknown.detail) == (
        "warn",
        "9000 MB available; the number of nodes is unknown: why",
    )


def test_bundle() -> None:
    assert n.check_bundle(BUNDLE) == Check("bundle", "ok", "/c/bundle/manifest.json: complete, 21 items")
    cases = [
        (BundleFacts("/c/bundle/manifest.json", exists=False), "no /c/bundle/manifest.json"),
        (replace(BUNDLE, error="not schema 1"), "not schema 1"),
        (replace(BUNDLE, complete=False, missing=("helm", "metallb")), "incomplete: helm, metallb not built"),
        (replace(BUNDLE, absent=tuple(f"f{i}" for i in range(7))), "f0, f1, f2, f3, f4 and 2 more"),
    ]
    for facts, detail in cases:
        check = n.check_bundle(facts)
        assert check.status == "fail", check
        assert detail in check.detail, check
        assert check.fix == "canarylab bundle build"


# --- the facts, gathered from fixture trees ------------------------------------------


def test_module_state(tmp_path: Path) -> None:
    sys_module, lib = tmp_path / "sys", tmp_path / "lib"
    (sys_module / "vxlan").mkdir(parents=True)
    assert module_state("vxlan", "6.1", sys_module, lib) == LOADED
    assert module_state("overlay", "6.1", sys_module, lib) is None  # no /lib/modules/6.1: cannot tell
    base = lib / "6.1"
    base.mkdir(parents=True)
    (base / "modules.builtin").write_text("kernel/fs/overlayfs/overlay.ko\n")
    (base / "modules.dep").write_text(
        "kernel/net/bridge/br_netfilter.ko.xz: kernel/net/bridge/bridge.ko.xz\n"
        "kernel/net/bridge/bridge.ko.xz:\n"
    )
    assert module_state("overlay", "6.1", sys_module, lib) == BUILT_IN
    assert module_state("br_netfilter", "6.1", sys_module, lib) == LOADABLE
    assert module_state("nbd", "6.1", sys_module, lib) == ABSENT
    (base / "modules.builtin").unlink()
    assert module_state("nbd", "6.1", sys_module, lib) is None  # built in, perhaps


def test_cgroup_layout(tmp_path: Path) -> None:
    assert cgroup_layout(tmp_path / "none") is None
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cgroup.controllers").write_text("cpu memory\n")
    assert cgroup_layout(tmp_path / "v2") == "v2"
    for sub in ("memory", "unified"):
        (tmp_path / "hybrid" / sub).mkdir(parents=True)
    assert cgroup_layout(tmp_path / "hybrid") == "hybrid"
    (tmp_path / "v1" / "memory").mkdir(parents=True)
    assert cgroup_layout(tmp_path / "v1") == "v1"


def test_docker_facts(tmp_path: Path) -> None:
    shim = tmp_path / "usr-bin-docker"
    shim.write_text('#!/bin/sh\nexec /usr/bin/podman "$@"\n')
    shim.chmod(0o755)
    project = tmp_path / "project"
    (project / ".cache" / "bin").mkdir(parents=True)
    (project / ".cache" / "bin" / "docker").symlink_to(shim)
    other = tmp_path / "local-bin"
    other.mkdir()
    (other / "docker").write_bytes(b"\x7fELF" + b"\0" * 100)
    (other / "docker").chmod(0o755)
    facts = docker_facts(project, f"{other}:{project / '.cache' / 'bin'}", shim=shim)
    assert (facts.shim, facts.shim_is_podman, facts.link_target) == (str(shim), True, os.path.realpath(shim))
    assert facts.first_on_path == str(other / "docker")
    assert n.check_docker_shim(facts).status == "warn"
    first = docker_facts(project, f"{project / '.cache' / 'bin'}:{other}", shim=shim)
    assert n.check_docker_shim(first).status == "ok"
    shim.write_bytes(b"\x7fELF docker" + b"\0" * 100)
    assert n.check_docker_shim(docker_facts(project, str(other), shim=shim)).status == "fail"
    assert docker_facts(project, str(other), shim=tmp_path / "nowhere").shim is None


def _manifest(tmp_path: Path, complete: bool = True, size: int = 5) -> Path:
    (tmp_path / "pause").mkdir(parents=True)
    (tmp_path / "pause" / "image.tar").write_bytes(b"12345")
    files = [{"name": "image.tar", "path": "pause/image.tar", "sha256": "0" * 64, "size": size}]
    data = {
        "schema": 1,
        "complete": complete,
        "missing": [] if complete else ["helm"],
        "items": [{"name": "image-pause", "kind": "image", "files": files}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    return tmp_path


def test_bundle_facts(tmp_path: Path) -> None:
    assert bundle_facts(tmp_path / "none").exists is False
    good = bundle_facts(_manifest(tmp_path / "good"))
    assert (good.exists, good.complete, good.items, good.absent, good.error) == (True, True, 1, (), None)
    incomplete = bundle_facts(_manifest(tmp_path / "incomplete", complete=False))
    assert (incomplete.complete, incomplete.missing) == (False, ("helm",))
    resized = bundle_facts(_manifest(tmp_path / "resized", size=6))
    assert resized.absent == ("pause/image.tar",)
    gone = _manifest(tmp_path / "gone")
    (gone / "pause" / "image.tar").unlink()
    assert bundle_facts(gone).absent == ("pause/image.tar",)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text('{"schema": 0}')
    assert "not a bundle manifest of schema 1" in (bundle_facts(tmp_path / "bad").error or "")


def test_bundle_dir_follows_the_lab_s_environment(tmp_path: Path) -> None:
    assert bundle_dir({"CANARYLAB_CACHE": str(tmp_path)}) == tmp_path / "bundle"
    assert bundle_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "canarylab" / "bundle"
    assert bundle_dir({}) == Path.home() / ".cache" / "canarylab" / "bundle"


# --- the Vagrantfile's answer through a stand-in `vagrant`, and the real facts ----------


def _stub_vagrant(tmp_path: Path, values: dict[str, object]) -> dict[str, str]:
    """A PATH whose `vagrant` writes ``values`` as the Vagrantfile's JSON (then this host's PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "config.json").write_text(json.dumps(values))
    (bin_dir / "vagrant").write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && echo "Vagrant 2.3.4" && exit 0\n'
        f'cp {tmp_path / "config.json"} "$CANARYLAB_CONFIG_JSON"\n'
    )
    (bin_dir / "vagrant").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}


def test_load_lab_size_carries_the_kind_of_node(tmp_path: Path) -> None:
    env = _stub_vagrant(tmp_path, {"nodes": "containers", "provider": "docker", "machines": _machines(1)})
    size = load_lab_size(tmp_path, env)
    assert (size.nodes, size.provider, size.workers) == ("containers", "docker", 1)


def test_real_container_checks_on_this_machine(root: Path, tmp_path: Path) -> None:
    """The Vagrantfile says containers: the container checks run on facts gathered for real,
    and they agree with what this host says."""
    env = _stub_vagrant(tmp_path, {"nodes": "containers", "provider": "docker", "machines": _machines(1)})
    env["CANARYLAB_CACHE"] = str(tmp_path / "cache")  # no bundle there
    found = {ch.name: ch for ch in run_doctor(root, "lab", environ=env)}
    assert not {"box", "provider", "virtualisation", "cpus", "disk", "vbox-networks"} & set(found)
    assert found["nodes"].detail.startswith("containers")
    assert found["bundle"].status == "fail"
    assert str(tmp_path / "cache" / "bundle" / "manifest.json") in found["bundle"].detail
    facts = gather_containers(root, {**os.environ, **env})
    assert (found["root"].status == "ok") == (os.geteuid() == 0)
    assert (facts.podman is None) == (found["podman"].status == "fail")
    assert facts.bridge_nf == Path("/proc/sys/net/bridge").is_dir()
    assert "memory" in found
    assert "1 controller x 2700 MB + 1 worker x 1900 MB" in found["memory"].detail


def test_real_vm_checks_when_the_vagrantfile_says_vms(root: Path, tmp_path: Path) -> None:
    env = _stub_vagrant(
        tmp_path,
        {"nodes": "vms", "provider": "libvirt", "box": "bento/ubuntu-24.04", "machines": _machines(1)},
    )
    found = {ch.name: ch for ch in run_doctor(root, "lab", environ=env)}
    assert {"nodes", "provider", "box", "virtualisation", "memory", "cpus", "disk"} <= set(found)
    assert not {"podman", "runc", "docker-shim", "bundle"} & set(found)


def test_the_real_vagrantfile_says_nodes(root: Path) -> None:
    """The key the doctor reads: `nodes` in the real Vagrantfile's CANARYLAB_CONFIG_JSON."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CANARYLAB_")}
    for kind in ("vms", "containers"):
        config = vagrant_config(root, {**base, "CANARYLAB_NODES": kind})
        if config.unknown == NO_VAGRANT:
            continue
        if config.values is None:  # container nodes without the shim: the Vagrantfile says so
            assert kind == "containers", config.message
            assert "docker shim" in config.message
            continue
        assert lab_nodes(config) == kind
        size = lab_size(config)
        assert isinstance(size, LabSize), size
        assert size.nodes == kind
        assert (size.provider == "docker") == (kind == "containers")
