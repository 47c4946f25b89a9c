"""Static checks of everything Ansible, YAML and Vagrant in the repository.

- `ansible-playbook --syntax-check` of every playbook in the repository (found by
  content: a YAML list of plays), whoever wrote it;
- ansible-lint at the `production` profile (.ansible-lint) and yamllint (.yamllint)
  over the repository;
- `vagrant validate` for the virtualbox and the libvirt provider, and the
  inventory the Vagrantfile writes.
VirtualBox cannot be installed on CI machines: a stand-in `VBoxManage` that only
answers `--version` (7.0, the newest Vagrant 2.3 knows) lets Vagrant validate the virtualbox configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SKIP_DIRS = {
    ".git",
    ".venv",
    ".cache",
    "results",
    "node_modules",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}
PLAY_KEYS = {"hosts", "import_playbook", "ansible.builtin.import_playbook"}

pytestmark = pytest.mark.static


def _yaml_files() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not (Path(dirpath) / d).is_symlink()]
        if "templates" in Path(dirpath).relative_to(ROOT).parts:
            continue
        found += [Path(dirpath) / f for f in filenames if f.endswith((".yml", ".yaml"))]
    return sorted(found)


def _is_playbook(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(play, dict) and PLAY_KEYS & play.keys() for play in data)
    )


PLAYBOOKS = [p.relative_to(ROOT) for p in _yaml_files() if _is_playbook(p)]


def _run(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=900, check=False
    )


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VAGRANT_DEFAULT_PROVIDER", None)
    return {**env, **extra}


def test_the_lab_playbooks_are_found() -> None:
    names = {str(p) for p in PLAYBOOKS}
    assert {"playbooks/site.yml", "playbooks/cluster.yml"} <= names
    if (ROOT / "experiment.yml").exists():
        assert "experiment.yml" in names


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=str)
def test_playbook_syntax(playbook: Path) -> None:
    result = _run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory/local.yml", str(playbook)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile() -> None:
    result = _run([str(BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]


def test_yamllint() -> None:
    result = _run([str(BIN / "yamllint"), "--format", "parsable", "."])
    errors = [line for line in result.stdout.splitlines() if "[error]" in line]
    assert not errors, "\n".join(errors)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


# --- Vagrant -------------------------------------------------------------------


def _vagrant() -> str:
    found = shutil.which("vagrant")
    if found is None:
        pytest.fail("vagrant is missing: run `make setup` (apt: vagrant, vagrant-libvirt)")
    return found


@pytest.fixture
def vbox_stub(tmp_path: Path) -> Path:
    stub = tmp_path / "stub-bin"
    stub.mkdir()
    (stub / "VBoxManage").write_text("#!/bin/sh\necho 7.0.20r163906\n")
    (stub / "VBoxManage").chmod(0o755)
    return stub


def _validate(provider: str, vbox_stub: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = _env(VAGRANT_DEFAULT_PROVIDER=provider)
    env["PATH"] = f"{vbox_stub}{os.pathsep}{env['PATH']}"
    return _run([_vagrant(), "validate"], env=env, cwd=cwd)


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_vagrant_validate(provider: str, vbox_stub: Path) -> None:
    result = _validate(provider, vbox_stub)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def _lab_copy(tmp_path: Path, *, vagrantfile: bool = True) -> Path:
    """What the Vagrantfile reads, in a scratch directory: lab.yml and the pinned boxes."""
    lab = tmp_path / "lab"
    versions = lab / "inventory/group_vars/all"
    versions.mkdir(parents=True)
    shutil.copy(ROOT / "lab.yml", lab)
    shutil.copy(ROOT / "inventory/group_vars/all/versions.yml", versions)
    if vagrantfile:
        shutil.copy(ROOT / "Vagrantfile", lab)
    return lab


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_vagrant_validate_rejects_a_broken_provider_block(
    provider: str, vbox_stub: Path, tmp_path: Path
) -> None:
    """The validation above really checks the provider configuration."""
    lab = _lab_copy(tmp_path, vagrantfile=False)
    text = (ROOT / "Vagrantfile").read_text()
    var = {"virtualbox": "vb", "libvirt": "lv"}[provider]
    broken = text.replace(
        f'{var}.cpus = m["cpus"]', f'{var}.cpus = m["cpus"]\n        {var}.no_such_option = 1'
    )
    assert broken != text
    (lab / "Vagrantfile").write_text(broken)
    result = _validate(provider, vbox_stub, cwd=lab)
    assert result.returncode != 0
    assert "no_such_option" in result.stdout + result.stderr


@pytest.mark.parametrize("workers", [0, 10])
def test_vagrant_refuses_a_bad_worker_count(workers: int, vbox_stub: Path) -> None:
    env = _env(CANARYLAB_WORKERS=str(workers))
    env["PATH"] = f"{vbox_stub}{os.pathsep}{env['PATH']}"
    result = _run([_vagrant(), "validate"], env=env)
    assert result.returncode != 0
    assert "workers must be 1 - 9" in result.stdout + result.stderr


def test_vagrant_says_what_is_missing_without_ansible(vbox_stub: Path, tmp_path: Path) -> None:
    lab = _lab_copy(tmp_path)
    env = _env()
    env["PATH"] = os.pathsep.join([str(vbox_stub), "/usr/bin", "/bin"])
    result = _run([_vagrant(), "provision"], env=env, cwd=lab)
    assert result.returncode != 0
    assert "ansible-playbook is neither on PATH nor in" in result.stdout + result.stderr


RUBY_LOAD = """
module Vagrant
  def self.configure(_version); end
  module Errors; class VagrantError < StandardError; end; end
end
ARGV.replace(["status"])
load "Vagrantfile"
write_inventory(ENV.fetch("PROVIDER"))
"""


def _generated_inventory(tmp_path: Path, provider: str, workers: int) -> Path:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.fail("ruby is missing (it comes with vagrant): run `make setup`")
    out = tmp_path / "vagrant.yml"
    env = _env(CANARYLAB_INVENTORY=str(out), CANARYLAB_WORKERS=str(workers), PROVIDER=provider)
    result = _run([ruby, "-e", RUBY_LOAD], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_vagrant_inventory_matches_the_machines(tmp_path: Path) -> None:
    inventory = _generated_inventory(tmp_path, "libvirt", workers=3)
    result = _run([str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"])
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert data["controller"]["hosts"] == ["cl-controller"]
    assert data["workers"]["hosts"] == ["cl-worker-1", "cl-worker-2", "cl-worker-3"]
    assert set(data["k8s_cluster"]["children"]) == {"controller", "workers"}
    assert data["canarylab_load"]["hosts"] == ["localhost"]
    hostvars = data["_meta"]["hostvars"]
    for i, name in enumerate(["cl-controller", "cl-worker-1", "cl-worker-2", "cl-worker-3"]):
        assert hostvars[name]["ansible_host"] == f"192.168.56.{10 + i}"
        assert hostvars[name]["cluster_node_ip"] == f"192.168.56.{10 + i}"
        assert hostvars[name]["ansible_user"] == "vagrant"
        key = hostvars[name]["ansible_ssh_private_key_file"]
        assert key == str(ROOT / ".vagrant" / "machines" / name / "libvirt" / "private_key")
        assert hostvars[name]["canarylab_target"] == "lab"
    assert hostvars["localhost"]["ansible_connection"] == "local"
    # the lab's own variables, for every host (the Ansible host's plays read them too)
    for name in [*hostvars]:
        assert hostvars[name]["cluster_loadbalancer_range"] == "192.168.56.200-192.168.56.220"
        assert hostvars[name]["cluster_private_network"] == "192.168.56.0/24"


ADDRESSES_PLAYBOOK = """
- name: The pool and the fixed LoadBalancer addresses as the plays resolve them
  hosts: all
  gather_facts: false
  roles: [cluster, canarylab, metallb, istio, monitoring]
  tasks:
    - name: Resolved addresses
      ansible.builtin.debug:
        msg: >-
          {{ [metallb_address_range, cluster_loadbalancer_range, istio_gateway_ip,
              monitoring_grafana_ip, monitoring_prometheus_ip, canarylab_gateway_ip,
              canarylab_grafana_ip, canarylab_prometheus_ip] | to_json }}
      tags: [resolved]
"""


def _resolved(inventory: Path, playbook_text: str, tmp_path: Path) -> dict[str, Any]:
    """Each host's `msg` of the tiny playbook: the roles' defaults are in play, their tasks are not
    (--tags resolved; --skip-tags always skips the roles' argument checks)."""
    playbook = tmp_path / "resolve.yml"
    playbook.write_text(playbook_text)
    result = _run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(playbook),
            "--tags",
            "resolved",
            "--skip-tags",
            "always",
        ],
        env=_env(
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_STDOUT_CALLBACK="json",
            ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    hosts = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {
        h: (r["msg"] if not isinstance(r["msg"], str) else json.loads(r["msg"])) for h, r in hosts.items()
    }


def _lab_addresses(inventory: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Per host: the pool (metallb's, the inventory's), then the gateway, Grafana and Prometheus
    addresses as the roles get them, then as the host's plays (playbooks/app.yml) get them."""
    return {h: list(v) for h, v in _resolved(inventory, ADDRESSES_PLAYBOOK, tmp_path).items()}


def _expected_addresses(prefix: str) -> list[str]:
    pool = f"{prefix}.200-{prefix}.220"
    ips = [f"{prefix}.200", f"{prefix}.201", f"{prefix}.202"]
    return [pool, pool, *ips, *ips]


def test_vagrant_inventory_follows_the_network_prefix(tmp_path: Path) -> None:
    """Another prefix moves the nodes, the MetalLB pool and the fixed addresses."""
    ruby = shutil.which("ruby")
    assert ruby is not None
    out = tmp_path / "inventory" / "vagrant.yml"
    # group_vars beside the inventory, as inventory/vagrant.yml has them.
    out.parent.mkdir()
    (out.parent / "group_vars").symlink_to(ROOT / "inventory" / "group_vars")
    env = _env(
        CANARYLAB_INVENTORY=str(out),
        CANARYLAB_WORKERS="1",
        PROVIDER="libvirt",
        CANARYLAB_NETWORK_PREFIX="10.77.3",
    )
    result = _run([ruby, "-e", RUBY_LOAD], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    addresses = _lab_addresses(out, tmp_path)
    # Every host, the Ansible host's plays (playbooks/app.yml's endpoints, the experiment) too.
    assert addresses == dict.fromkeys(
        ["cl-controller", "cl-worker-1", "localhost"], _expected_addresses("10.77.3")
    )


def test_site_playbook_targets_every_vagrant_machine(tmp_path: Path) -> None:
    inventory = _generated_inventory(tmp_path, "virtualbox", workers=2)
    result = _run([str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/site.yml", "--list-hosts"])
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("cl-controller", "cl-worker-1", "cl-worker-2"):
        assert name in result.stdout


def test_example_server_inventory_gets_the_group_vars() -> None:
    inventory = ROOT / "inventory" / "examples" / "servers.yml"
    result = _run([str(BIN / "ansible-inventory"), "-i", str(inventory), "--host", "k8s-worker-1"])
    assert result.returncode == 0, result.stderr
    hostvars = yaml.safe_load(result.stdout)
    assert hostvars["kubernetes_version"].startswith("1.32.")
    assert hostvars["cluster_node_ip"] == "10.0.10.11"


def test_example_server_inventory_moves_the_pool_and_the_addresses(tmp_path: Path) -> None:
    """The example's own group_vars (its MetalLB pool) win over the roles' defaults, and the
    fixed addresses follow the pool on every host."""
    inventory = ROOT / "inventory" / "examples" / "servers.yml"
    addresses = _lab_addresses(inventory, tmp_path)
    assert addresses == dict.fromkeys(
        ["k8s-cp-1", "k8s-worker-1", "k8s-worker-2", "localhost"], _expected_addresses("10.0.10")
    )


def test_example_server_inventory_owns_its_variables() -> None:
    """A complete example: its own group_vars (real files), the pins and the contract linked."""
    group_vars = ROOT / "inventory" / "examples" / "group_vars"
    assert not group_vars.is_symlink()
    for name in ("versions.yml", "contract.yml"):
        link = group_vars / "all" / name
        assert link.is_symlink(), link
        assert link.resolve() == (ROOT / "inventory" / "group_vars" / "all" / name).resolve()
    assert (group_vars / "all" / "network.yml").is_file()
    # the shared group_vars hold the pins and the contract only: no wiring that would
    # override an inventory's own variables
    shared = sorted(p.name for p in (ROOT / "inventory" / "group_vars" / "all").iterdir())
    assert shared == ["contract.yml", "versions.yml"]


# An inventory's own variables must win over the roles' wiring (issue 10, "Inventories that
# own their variables").  Ansible's precedence: role defaults < an inventory file's group vars
# < the inventory's group_vars/all < its group_vars/<group> < host vars.  Until issue 10 the wiring
# (metallb_address_range: "{{ cluster_loadbalancer_range }}", kubeadm_control_plane_*) and the
# per-lab facts (cluster_loadbalancer_range, cluster_pod_cidr) sit in inventory/group_vars/all,
# so the `vars:` of an inventory file, e.g. the one the Vagrantfile writes, lost against them;
# that is why the Vagrantfile and inventory/examples/servers.yml put the pool on the controller's
# host vars, and why mesh.yml's wiring read it back through hostvars[cluster_controller].
# Now the wiring is in the roles' defaults/ and the per-lab facts in each inventory.
PRECEDENCE_INVENTORY = """
all:
  children:
    k8s_cluster:
      children:
        controller:
          hosts:
            cp-1:
              ansible_connection: local
              ansible_python_interpreter: "{{ ansible_playbook_python }}"
              cluster_node_ip: 10.9.9.10
      vars:
        # a role's own variable, set by the inventory for the cluster's group
        kubeadm_control_plane_service_cidr: 10.100.0.0/16
  vars:
    # per-lab facts, for every host of this inventory
    cluster_loadbalancer_range: 10.9.9.200-10.9.9.220
    cluster_pod_cidr: 10.32.0.0/16
"""
PRECEDENCE_PLAYBOOK = """
- name: What the roles resolve on the controller
  hosts: controller
  gather_facts: false
  roles: [cluster, canarylab, kubeadm_control_plane, flannel, metallb, monitoring]
  tasks:
    - name: Resolved values
      ansible.builtin.debug:
        msg: >-
          {{ {'metallb_address_range': metallb_address_range,
              'kubeadm_control_plane_pod_cidr': kubeadm_control_plane_pod_cidr,
              'kubeadm_control_plane_service_cidr': kubeadm_control_plane_service_cidr,
              'flannel_pod_cidr': flannel_pod_cidr,
              'monitoring_grafana_ip': monitoring_grafana_ip} | to_json }}
      tags: [resolved]
"""


def test_an_inventory_s_own_group_vars_override_the_role_wiring(tmp_path: Path) -> None:
    """The vars of an inventory file (as the Vagrantfile writes them) reach the roles.

    The inventory sits beside a link to inventory/group_vars, as inventory/vagrant.yml does,
    so the pins and the contract come from the one place they live."""
    inventory = tmp_path / "inventory" / "lab.yml"
    inventory.parent.mkdir()
    (inventory.parent / "group_vars").symlink_to(ROOT / "inventory" / "group_vars")
    inventory.write_text(PRECEDENCE_INVENTORY)
    assert _resolved(inventory, PRECEDENCE_PLAYBOOK, tmp_path)["cp-1"] == {
        "metallb_address_range": "10.9.9.200-10.9.9.220",
        "kubeadm_control_plane_pod_cidr": "10.32.0.0/16",
        "kubeadm_control_plane_service_cidr": "10.100.0.0/16",
        "flannel_pod_cidr": "10.32.0.0/16",
        "monitoring_grafana_ip": "10.9.9.201",
    }


# --- rendered manifests ------------------------------------------------------------


def _render(template: Path, **values: object) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(template.read_text()).render(ansible_managed="Ansible managed", **values)


def test_flannel_manifest_is_valid_for_kubernetes_1_32_and_binds_the_node_ip(tmp_path: Path) -> None:
    pins = yaml.safe_load((ROOT / "inventory/group_vars/all/versions.yml").read_text())
    text = _render(
        ROOT / "roles/flannel/templates/kube-flannel.yml.j2",
        flannel_version=pins["flannel_version"],
        flannel_cni_plugin_version=pins["flannel_cni_plugin_version"],
        flannel_pod_cidr="10.244.0.0/16",
        flannel_backend="vxlan",
        flannel_namespace="kube-flannel",
        flannel_image_repository="ghcr.io/flannel-io",
    )
    manifest = tmp_path / "kube-flannel.yml"
    manifest.write_text(text)
    result = _run([str(BIN / "kubernetes-validate"), "-k", "1.32.0", str(manifest)])
    assert result.returncode == 0, result.stdout + result.stderr
    ds = next(d for d in yaml.safe_load_all(text) if d["kind"] == "DaemonSet")
    flanneld = ds["spec"]["template"]["spec"]["containers"][0]
    assert "--iface=$(NODE_IP)" in flanneld["args"]
    env = {e["name"]: e for e in flanneld["env"]}
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert not any("eth1" in arg for arg in flanneld["args"])


def test_kubeadm_configs_pass_the_private_ip_to_kubelet() -> None:
    init = list(
        yaml.safe_load_all(
            _render(
                ROOT / "roles/kubeadm_control_plane/templates/init.yaml.j2",
                kubeadm_control_plane_advertise_address="192.168.56.10",
                kubeadm_control_plane_bind_port=6443,
                kubeadm_control_plane_node_name="cl-controller",
                kubeadm_control_plane_cri_socket="unix:///run/containerd/containerd.sock",
                kubeadm_control_plane_kubernetes_version="1.32.10",
                kubeadm_control_plane_pod_cidr="10.244.0.0/16",
                kubeadm_control_plane_service_cidr="10.96.0.0/12",
            )
        )
    )
    kinds = {d["kind"]: d for d in init}
    assert kinds["InitConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert kinds["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == "192.168.56.10"
    assert {"name": "node-ip", "value": "192.168.56.10"} in kinds["InitConfiguration"]["nodeRegistration"][
        "kubeletExtraArgs"
    ]
    assert kinds["ClusterConfiguration"]["networking"]["podSubnet"] == "10.244.0.0/16"
    assert kinds["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    join = yaml.safe_load(
        _render(
            ROOT / "roles/kubeadm_join/templates/join.yaml.j2",
            kubeadm_join_api_endpoint="192.168.56.10:6443",
            kubeadm_join_token="abcdef.0123456789abcdef",
            kubeadm_join_ca_cert_hash="sha256:" + "0" * 64,
            kubeadm_join_node_name="cl-worker-1",
            kubeadm_join_cri_socket="unix:///run/containerd/containerd.sock",
            kubeadm_join_node_ip="192.168.56.11",
        )
    )
    assert join["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert {"name": "node-ip", "value": "192.168.56.11"} in join["nodeRegistration"]["kubeletExtraArgs"]
