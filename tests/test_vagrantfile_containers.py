"""The Vagrantfile's second kind of node: containers (docker provider, podman behind it).

What the Vagrantfile hands Vagrant and Ansible for container nodes, checked without
starting any (tests/containerlab starts them): the config it prints, the inventory it
writes, the refusals, and that an existing container lab keeps its kind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

RUBY_LOAD = """
module Vagrant
  def self.configure(_version); end
  module Errors; class VagrantError < StandardError; end; end
end
ARGV.replace(ENV.fetch("ARGS", "status").split)
load "Vagrantfile"
write_inventory("docker") if ENV["WRITE"]
"""


def _lab(tmp_path: Path, *, shim: bool = True) -> Path:
    """A scratch lab: the real Vagrantfile, lab.yml, versions.yml, and (or not) the docker shim link."""
    lab = tmp_path / "lab"
    versions = lab / "inventory/group_vars/all"
    versions.mkdir(parents=True)
    for name in ("Vagrantfile", "lab.yml"):
        shutil.copy(ROOT / name, lab)
    shutil.copy(ROOT / "inventory/group_vars/all/versions.yml", versions)
    if shim:
        (lab / ".cache/bin").mkdir(parents=True)
        (lab / ".cache/bin/docker").write_text('#!/bin/sh\nexec podman "$@"\n')
        (lab / ".cache/bin/docker").chmod(0o755)
    return lab


def _ruby(lab: Path, **env: str) -> subprocess.CompletedProcess[str]:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.fail("ruby is missing (Debian's vagrant package brings it): run `make setup`")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CANARYLAB_", "VAGRANT_"))}
    return subprocess.run(
        [ruby, "-e", RUBY_LOAD],
        cwd=lab,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _config(lab: Path, **env: str) -> dict[str, object]:
    result = _ruby(lab, CANARYLAB_CONFIG_JSON="-", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    config: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return config


def test_vms_stay_the_default(tmp_path: Path) -> None:
    config = _config(_lab(tmp_path))
    assert config["nodes"] == "vms"
    assert config["provider"] == "virtualbox"


def test_container_nodes_use_the_docker_provider(tmp_path: Path) -> None:
    config = _config(_lab(tmp_path), CANARYLAB_NODES="containers", CANARYLAB_WORKERS="1")
    assert config["nodes"] == "containers"
    assert config["provider"] == "docker"
    machines = config["machines"]
    assert isinstance(machines, list)
    assert [(m["name"], m["ip"]) for m in machines] == [
        ("cl-controller", "192.168.56.10"),
        ("cl-worker-1", "192.168.56.11"),
    ]


def test_lab_yml_chooses_containers(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    text = (lab / "lab.yml").read_text()
    assert "\nnodes: vms " in text
    (lab / "lab.yml").write_text(text.replace("\nnodes: vms ", "\nnodes: containers "))
    assert _config(lab)["nodes"] == "containers"


def test_an_existing_container_lab_keeps_its_kind(tmp_path: Path) -> None:
    """`vagrant destroy` of a container lab must find the container nodes without CANARYLAB_NODES."""
    lab = _lab(tmp_path)
    machine = lab / ".vagrant/machines/cl-controller/docker"
    machine.mkdir(parents=True)
    (machine / "id").write_text("0123abcd")
    assert _config(lab)["nodes"] == "containers"
    # and where VAGRANT_DOTFILE_PATH moves Vagrant's state, it is looked for there
    moved = tmp_path / "state"
    assert _config(lab, VAGRANT_DOTFILE_PATH=str(moved))["nodes"] == "vms"
    shutil.move(str(lab / ".vagrant"), moved)
    assert _config(lab, VAGRANT_DOTFILE_PATH=str(moved))["nodes"] == "containers"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANARYLAB_NODES": "pods"}, "nodes pods is not one of vms, containers"),
        (
            {"CANARYLAB_NODES": "containers", "ARGS": "up --provider=virtualbox"},
            "runs on the docker provider",
        ),
        ({"CANARYLAB_NODES": "containers", "ARGS": "up --provider libvirt"}, "runs on the docker provider"),
        ({"CANARYLAB_NAME_PREFIX": "Bad_Name"}, "must be lowercase letters"),
    ],
)
def test_refusals(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = _ruby(_lab(tmp_path), **env)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_container_nodes_need_podman_dockers_shim(tmp_path: Path) -> None:
    result = _ruby(_lab(tmp_path, shim=False), CANARYLAB_NODES="containers")
    assert result.returncode != 0
    assert "podman-docker's docker shim" in result.stdout + result.stderr
    assert "make setup" in result.stdout + result.stderr


def test_container_inventory(tmp_path: Path) -> None:
    """Same groups as the VM lab's; podman exec instead of SSH; the offline bundle; the cluster layer."""
    lab = _lab(tmp_path)
    out = lab / "inventory" / "vagrant.yml"
    cache = tmp_path / "cache"
    result = _ruby(
        lab,
        WRITE="1",
        CANARYLAB_NODES="containers",
        CANARYLAB_WORKERS="2",
        CANARYLAB_NAME_PREFIX="clt",
        CANARYLAB_NETWORK_PREFIX="10.123.0",
        CANARYLAB_INVENTORY=str(out),
        CANARYLAB_CACHE=str(cache),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(out), "--list"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    assert listed.returncode == 0, listed.stderr
    data = yaml.safe_load(listed.stdout)
    assert data["controller"]["hosts"] == ["clt-controller"]
    assert data["workers"]["hosts"] == ["clt-worker-1", "clt-worker-2"]
    hostvars = data["_meta"]["hostvars"]
    for i, name in enumerate(["clt-controller", "clt-worker-1", "clt-worker-2"]):
        node = hostvars[name]
        assert node["ansible_connection"] == "canarylab_podman"
        assert node["ansible_host"] == name  # the container's name
        assert node["cluster_node_ip"] == f"10.123.0.{10 + i}"
        assert "ansible_ssh_private_key_file" not in node
        assert node["cluster_bundle_dir"] == str(cache / "bundle")
        assert node["canarylab_site_layers"] == ["cluster", "mesh", "monitoring", "app"]
        assert node["cluster_loadbalancer_range"] == "10.123.0.200-10.123.0.220"
    assert hostvars["localhost"]["ansible_connection"] == "local"


def test_vm_inventory_has_no_offline_settings(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    out = lab / "inventory" / "vagrant.yml"
    result = _ruby(lab, WRITE="1", CANARYLAB_INVENTORY=str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    for name in ("cluster_bundle_dir", "canarylab_site_layers", "containers.podman"):
        assert name not in text


def test_an_inventory_written_elsewhere_gets_the_pins(tmp_path: Path) -> None:
    """CANARYLAB_INVENTORY outside inventory/: group_vars (pins, contract) are linked beside it."""
    lab = _lab(tmp_path)
    out = tmp_path / "elsewhere" / "lab.yml"
    result = _ruby(lab, WRITE="1", CANARYLAB_NODES="containers", CANARYLAB_INVENTORY=str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    link = out.parent / "group_vars"
    assert link.is_symlink()
    assert link.resolve() == (lab / "inventory" / "group_vars").resolve()
    assert (link / "all" / "versions.yml").is_file()
