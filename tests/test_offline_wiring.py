"""The cluster roles' offline path, as Ansible resolves it (issue 13), and the upstream path unchanged.

`cluster_bundle_dir` names an offline bundle on the Ansible host; roles/cluster reads its
manifest.json with a lookup and every cluster role takes its sources from there.  Empty,
the roles keep the VM lab's upstream sources.  Container-only settings follow the host's
facts (virtualization_type, default_ipv4), never the bundle, the inventory or a provider.

One ansible-playbook run resolves four stand-in hosts, one per combination of facts (a VM,
a podman container without a default route) and bundle (none, a fake one in tmp_path):
the roles' defaults, their argument specs (validated against the resolved values) and the
templates the roles hand to their modules.  Nothing connects anywhere (--tags resolved:
only the argument checks and the debug task run).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_tasks import json_playbook_env
from grafana_standin_loader import load as load_grafana_standin

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PINS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / "versions.yml").read_text())
KUBERNETES = f"v{PINS['kubernetes_version']}"

VM_FACTS = {
    "virtualization_type": "kvm",
    "virtualization_role": "guest",
    "default_ipv4": {"address": "10.0.2.15", "interface": "eth0"},
    "os_family": "Debian",
    "architecture": "x86_64",
}
CONTAINER_FACTS = {
    "virtualization_type": "podman",
    "virtualization_role": "guest",
    "default_ipv4": {},
    "os_family": "Debian",
    "architecture": "x86_64",
}
HOSTS = {
    "vm-upstream": (VM_FACTS, False),
    "vm-offline": (VM_FACTS, True),
    "ct-upstream": (CONTAINER_FACTS, False),
    "ct-offline": (CONTAINER_FACTS, True),
    # the same bundle, its proxy pinned to Istio's own (bundle_istio_proxy, as a host var wins
    # over the pins file): nothing of the vanilla-Envoy settings may follow the bundle alone
    "ct-offline-istio-proxy": (CONTAINER_FACTS, True),
}
HOST_VARS = {"ct-offline-istio-proxy": {"bundle_istio_proxy": "istio-proxy"}}
IMAGES = {
    "image-kube-apiserver": f"registry.k8s.io/kube-apiserver:{KUBERNETES}",
    "image-kube-controller-manager": f"registry.k8s.io/kube-controller-manager:{KUBERNETES}",
    "image-kube-scheduler": f"registry.k8s.io/kube-scheduler:{KUBERNETES}",
    "image-kube-proxy": f"registry.k8s.io/kube-proxy:{KUBERNETES}",
    "image-etcd": "registry.k8s.io/etcd:3.5.24-0",
    "image-coredns": "registry.k8s.io/coredns/coredns:v1.11.3",
    "image-pause": f"registry.k8s.io/pause:{PINS['kubernetes_pause_version']}",
    "image-flannel": f"ghcr.io/flannel-io/flannel:{PINS['bundle_flannel_version']}",
    "image-flannel-cni-plugin": (
        f"ghcr.io/flannel-io/flannel-cni-plugin:{PINS['bundle_flannel_cni_plugin_image_tag']}"
    ),
    "image-metallb-controller": f"quay.io/metallb/controller:v{PINS['metallb_version']}",
    "image-metallb-speaker": f"quay.io/metallb/speaker:v{PINS['metallb_version']}",
    "image-istio-pilot": f"{PINS['bundle_istio_image_hub']}/pilot:{PINS['bundle_istio_image_tag']}",
    "image-istio-proxyv2": f"{PINS['bundle_istio_image_hub']}/proxyv2:{PINS['bundle_istio_image_tag']}",
}
ISTIO_CHARTS = ("base", "istiod", "gateway")
WHEELS = ["kubernetes-32.0.1-py2.py3-none-any.whl", "six-1.17.0-py2.py3-none-any.whl"]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file(item: str, name: str) -> dict[str, Any]:
    path = f"{item}/v0-0123456789abcdef/{name}"
    return {"name": name, "path": path, "sha256": _sha(path), "size": 1}


def fake_manifest(**changes: Any) -> dict[str, Any]:
    """A manifest of the shape canarylab/bundle/manifest.py writes (the files need not exist)."""
    items: list[dict[str, Any]] = [
        {
            "name": "kubernetes",
            "kind": "go",
            "version": KUBERNETES,
            "files": [_file("kubernetes", n) for n in ("kubeadm", "kubelet", "kubectl", "kube-proxy")],
            "image": {},
        },
        {
            "name": "helm",
            "kind": "go",
            "version": PINS["helm_version"],
            "files": [_file("helm", "helm")],
            "image": {},
        },
        {
            "name": "python-kubernetes",
            "kind": "wheels",
            "version": PINS["kubernetes_python_client_version"],
            "files": [_file("python-kubernetes", w) for w in WHEELS],
            "image": {},
        },
        {
            "name": "metallb-chart",
            "kind": "chart",
            "version": PINS["metallb_version"],
            "files": [_file("metallb-chart", f"metallb-{PINS['metallb_version']}.tgz")],
            "image": {},
        },
        *(
            {
                "name": f"istio-{chart}-chart",
                "kind": "chart",
                "version": PINS["bundle_istio_chart_version"],
                "files": [_file(f"istio-{chart}-chart", f"{chart}-{PINS['bundle_istio_chart_version']}.tgz")],
                "image": {},
            }
            for chart in ISTIO_CHARTS
        ),
    ]
    for name, ref in IMAGES.items():
        items.append(
            {
                "name": name,
                "kind": "image",
                "version": ref.rsplit(":", 1)[1],
                "files": [_file(name, "image.tar")],
                "image": {"ref": ref, "id": "sha256:" + _sha(ref), "archive": "docker-archive"},
            }
        )
    manifest = {"schema": 1, "recipe": "canarylab-bundle/1", "complete": True, "missing": [], "items": items}
    manifest.update(changes)
    return manifest


def write_bundle(directory: Path, manifest: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def _inventory(tmp_path: Path, bundle: Path) -> Path:
    inventory = tmp_path / "inventory" / "lab.yml"
    inventory.parent.mkdir(exist_ok=True)
    link = inventory.parent / "group_vars"
    if not link.exists():
        link.symlink_to(ROOT / "inventory" / "group_vars")
    hosts = {
        name: {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "cluster_node_ip": f"10.9.9.{10 + i}",
            "canarylab_test_facts": facts,
            "cluster_bundle_dir": str(bundle) if offline else "",
            **HOST_VARS.get(name, {}),
        }
        for i, (name, (facts, offline)) in enumerate(HOSTS.items())
    }
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {"k8s_cluster": {"children": {"controller": {"hosts": hosts}}}},
                    "vars": {"cluster_loadbalancer_range": "10.9.9.200-10.9.9.220"},
                }
            }
        )
    )
    return inventory


RESOLVED = [
    "cluster_bundle_images",
    "k8s_prereqs_apt_update_cache",
    "containerd_install_method",
    "containerd_apt_update_cache",
    "containerd_restrict_oom_score_adj",
    "kubernetes_packages_install_method",
    "kubernetes_packages_apt_update_cache",
    "kubernetes_packages_binaries",
    "kubernetes_packages_binaries_version",
    "kubeadm_control_plane_apt_update_cache",
    "kubeadm_control_plane_python_wheels",
    "kubeadm_control_plane_available_images",
    "kubeadm_control_plane_image_pull_policy",
    "kubeadm_control_plane_kube_proxy_conntrack_max_per_core",
    "kubeadm_control_plane_kubelet_fail_swap_on",
    "kubeadm_control_plane_kubelet_disk_management",
    "kubeadm_control_plane_coredns_forward",
    "kubeadm_join_image_pull_policy",
    "helm_install_method",
    "helm_binary_src",
    "helm_binary_sha256",
    "helm_binary_version",
    "flannel_image_tag",
    "flannel_cni_plugin_image_tag",
    "flannel_available_images",
    "metallb_chart_file",
    "metallb_chart_ref",
    "metallb_release_values",
    "metallb_available_images",
    "istio_offline_charts",
    "istio_chart_refs",
    "istio_chart_version",
    "istio_proxy",
    "istio_proxy_image",
    "istio_available_images",
    "istio_istiod_release_values",
    "istio_gateway_release_values",
    "monitoring_method",
    "monitoring_prometheus_image",
    "monitoring_grafana_ip",
    "canarylab_loadbalancer_base",
]
TEMPLATES = {
    "init": "roles/kubeadm_control_plane/templates/init.yaml.j2",
    "join": "roles/kubeadm_join/templates/join.yaml.j2",
    "flannel": "roles/flannel/templates/kube-flannel.yml.j2",
    "containerd_v2": "roles/containerd/templates/config.toml.j2",
    "prometheus": "roles/monitoring/templates/prometheus.yml.j2",
    "kube_prometheus_stack": "roles/monitoring/templates/values.yml.j2",
    "grafana_standin": "roles/monitoring/templates/grafana-standin.yml.j2",
}
CLUSTER_ROLES = [
    "cluster",
    "k8s_prereqs",
    "containerd",
    "containerd_images",
    "kubernetes_packages",
    "kubeadm_control_plane",
    "helm",
    "flannel",
    "kubeadm_join",
    "metallb",
    "canarylab",
    "istio",
    "monitoring",
]


def _playbook() -> str:
    values = ", ".join(f"'{v}': {v}" for v in RESOLVED)
    rendered = ", ".join(
        f"'{k}': lookup('ansible.builtin.template', '{ROOT / path}')" for k, path in TEMPLATES.items()
    )
    play = [
        {
            "name": "What the cluster roles resolve",
            "hosts": "k8s_cluster",
            "gather_facts": False,
            "vars": {
                # the stand-in host's facts (nothing is gathered)
                "ansible_facts": "{{ canarylab_test_facts }}",
                "containerd_images_archives": "{{ cluster_bundle_images }}",
            },
            "roles": CLUSTER_ROLES,
            "tasks": [
                {
                    "name": "Resolved values",
                    "ansible.builtin.debug": {
                        "msg": "{{ {" + values + ", 'rendered': {" + rendered + "}} | to_json }}"
                    },
                    "vars": {
                        "containerd_config_version": 2,
                        "kubeadm_join_token": "abcdef.0123456789abcdef",
                        "kubeadm_join_ca_cert_hash": "sha256:" + "0" * 64,
                    },
                    "tags": ["resolved"],
                }
            ],
        }
    ]
    return yaml.safe_dump(play, sort_keys=False, width=1000)


def run_playbook(
    tmp_path: Path, inventory: Path, playbook: str, *args: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"play-{len(list(tmp_path.glob('play-*')))}.yml"
    path.write_text(playbook)
    env = json_playbook_env(tmp_path)
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(path), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def debug_messages(result: subprocess.CompletedProcess[str], task: str) -> dict[str, Any]:
    """Per host, the message of the debug task ``task`` of a passed run (json callback), as JSON."""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    hosts = next(t for t in tasks if t["task"]["name"] == task)["hosts"]
    return {h: json.loads(r["msg"]) if isinstance(r["msg"], str) else r["msg"] for h, r in hosts.items()}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("offline-wiring")
    bundle = write_bundle(tmp_path / "bundle", fake_manifest())
    inventory = _inventory(tmp_path, bundle)
    out = debug_messages(
        run_playbook(tmp_path, inventory, _playbook(), "--tags", "resolved"), "Resolved values"
    )
    for values in out.values():
        values["bundle"] = str(bundle)
    return out


def _docs(text: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def _flannel_images(text: str) -> set[str]:
    pod = _docs(text)["DaemonSet"]["spec"]["template"]["spec"]
    return {c["image"] for c in pod["containers"] + pod["initContainers"]}


# --- the upstream path: an empty cluster_bundle_dir keeps the VM lab as it was --------------


@pytest.mark.parametrize("host", ["vm-upstream", "ct-upstream"])
def test_without_a_bundle_the_sources_are_upstream(resolved: dict[str, dict[str, Any]], host: str) -> None:
    r = resolved[host]
    assert r["cluster_bundle_images"] == []
    assert r["containerd_install_method"] == "release"
    assert r["kubernetes_packages_install_method"] == "apt"
    assert r["helm_install_method"] == "release"
    for switch in (
        "k8s_prereqs_apt_update_cache",
        "containerd_apt_update_cache",
        "kubernetes_packages_apt_update_cache",
        "kubeadm_control_plane_apt_update_cache",
    ):
        assert r[switch] is True, switch
    assert r["kubernetes_packages_binaries"] == {}
    assert r["kubeadm_control_plane_python_wheels"] == []
    assert r["helm_binary_src"] == ""
    assert r["metallb_chart_file"] == ""
    assert r["metallb_chart_ref"] == "metallb"
    assert r["metallb_release_values"] == {}
    assert r["flannel_image_tag"] == PINS["flannel_version"]
    assert r["flannel_cni_plugin_image_tag"] == PINS["flannel_cni_plugin_version"]
    for images in (
        "kubeadm_control_plane_available_images",
        "flannel_available_images",
        "metallb_available_images",
    ):
        assert r[images] == [], images
    assert r["kubeadm_control_plane_image_pull_policy"] == ""
    assert r["kubeadm_join_image_pull_policy"] == ""


def test_a_vm_without_a_bundle_renders_what_it_always_did(resolved: dict[str, dict[str, Any]]) -> None:
    rendered = resolved["vm-upstream"]["rendered"]
    init = _docs(rendered["init"])
    assert set(init) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"}
    assert "imagePullPolicy" not in init["InitConfiguration"]["nodeRegistration"]
    assert init["KubeletConfiguration"] == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
    }
    assert "imagePullPolicy" not in yaml.safe_load(rendered["join"])["nodeRegistration"]
    assert _flannel_images(rendered["flannel"]) == {
        f"ghcr.io/flannel-io/flannel:{PINS['flannel_version']}",
        f"ghcr.io/flannel-io/flannel-cni-plugin:{PINS['flannel_cni_plugin_version']}",
    }
    assert "restrict_oom_score_adj" not in rendered["containerd_v2"]
    # no line of the container or offline settings, not even a blank one where they would be
    for text in rendered.values():
        assert "\n\n\n" not in text


# --- the offline path -----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["vm-offline", "ct-offline"])
def test_with_a_bundle_every_source_is_the_bundle(resolved: dict[str, dict[str, Any]], host: str) -> None:
    r = resolved[host]
    bundle = r["bundle"]
    manifest = fake_manifest()
    items = {i["name"]: i for i in manifest["items"]}
    assert r["containerd_install_method"] == "package"
    assert r["kubernetes_packages_install_method"] == "binaries"
    assert r["helm_install_method"] == "binary"
    for switch in (
        "k8s_prereqs_apt_update_cache",
        "containerd_apt_update_cache",
        "kubernetes_packages_apt_update_cache",
        "kubeadm_control_plane_apt_update_cache",
    ):
        assert r[switch] is False, switch

    kubernetes = {f["name"]: f for f in items["kubernetes"]["files"]}
    for name in ("kubeadm", "kubelet", "kubectl"):
        assert r["kubernetes_packages_binaries"][name] == {
            "src": f"{bundle}/{kubernetes[name]['path']}",
            "sha256": kubernetes[name]["sha256"],
        }
    assert r["kubernetes_packages_binaries_version"] == KUBERNETES

    helm = items["helm"]["files"][0]
    assert (r["helm_binary_src"], r["helm_binary_sha256"]) == (f"{bundle}/{helm['path']}", helm["sha256"])
    assert r["helm_binary_version"] == PINS["helm_version"]

    assert r["kubeadm_control_plane_python_wheels"] == [
        {"src": f"{bundle}/{f['path']}", "sha256": f["sha256"]} for f in items["python-kubernetes"]["files"]
    ]

    chart = items["metallb-chart"]["files"][0]
    assert r["metallb_chart_file"] == f"{bundle}/{chart['path']}"
    assert r["metallb_chart_ref"] == f"/var/cache/canarylab/metallb/metallb-{PINS['metallb_version']}.tgz"
    # the bundle carries no FRR image; MetalLB's L2 mode needs none
    assert r["metallb_release_values"] == {"speaker": {"frr": {"enabled": False}}}

    refs = sorted(IMAGES.values())
    assert sorted(i["name"] for i in r["cluster_bundle_images"]) == refs
    for image in r["cluster_bundle_images"]:
        item = next(i for i in manifest["items"] if i["image"].get("ref") == image["name"])
        assert image == {
            "name": item["image"]["ref"],
            "id": item["image"]["id"],
            "src": f"{bundle}/{item['files'][0]['path']}",
            "sha256": item["files"][0]["sha256"],
        }
    for images in (
        "kubeadm_control_plane_available_images",
        "flannel_available_images",
        "metallb_available_images",
    ):
        assert sorted(r[images]) == refs, images

    assert r["flannel_image_tag"] == PINS["bundle_flannel_version"]
    assert r["flannel_cni_plugin_image_tag"] == PINS["bundle_flannel_cni_plugin_image_tag"]
    assert _flannel_images(r["rendered"]["flannel"]) <= set(refs)

    assert r["kubeadm_control_plane_image_pull_policy"] == "Never"
    assert r["kubeadm_join_image_pull_policy"] == "Never"
    init = _docs(r["rendered"]["init"])
    assert init["InitConfiguration"]["nodeRegistration"]["imagePullPolicy"] == "Never"
    assert yaml.safe_load(r["rendered"]["join"])["nodeRegistration"]["imagePullPolicy"] == "Never"


# --- container-only settings: from the facts, never from the bundle or the inventory ---------

CONTAINER_ONLY = {
    # variable: (value in a container, value on a VM)
    "containerd_restrict_oom_score_adj": (True, False),
    "kubeadm_control_plane_kube_proxy_conntrack_max_per_core": (0, ""),
    "kubeadm_control_plane_kubelet_fail_swap_on": (False, True),
    "kubeadm_control_plane_kubelet_disk_management": (False, True),
    # no default route on the container nodes: no upstream DNS
    "kubeadm_control_plane_coredns_forward": (False, True),
}


@pytest.mark.parametrize("variable", sorted(CONTAINER_ONLY))
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_container_settings_follow_the_facts_alone(
    resolved: dict[str, dict[str, Any]], host: str, variable: str
) -> None:
    facts, _ = HOSTS[host]
    container, vm = CONTAINER_ONLY[variable]
    assert resolved[host][variable] == (container if facts is CONTAINER_FACTS else vm)


@pytest.mark.parametrize("host", ["ct-upstream", "ct-offline"])
def test_a_container_renders_its_settings(resolved: dict[str, dict[str, Any]], host: str) -> None:
    rendered = resolved[host]["rendered"]
    init = _docs(rendered["init"])
    assert init["KubeletConfiguration"]["failSwapOn"] is False
    # the host's disk is not the node's to clean: no image GC, no disk-pressure eviction
    assert init["KubeletConfiguration"]["imageGCHighThresholdPercent"] == 100
    assert init["KubeletConfiguration"]["evictionHard"] == {
        "memory.available": "100Mi",
        "nodefs.available": "0%",
        "nodefs.inodesFree": "0%",
        "imagefs.available": "0%",
    }
    assert init["KubeProxyConfiguration"]["apiVersion"] == "kubeproxy.config.k8s.io/v1alpha1"
    assert init["KubeProxyConfiguration"]["mode"] == "iptables"
    assert init["KubeProxyConfiguration"]["conntrack"] == {"maxPerCore": 0}
    assert re.search(r"^\s+restrict_oom_score_adj = true$", rendered["containerd_v2"], re.M)


@pytest.mark.parametrize("host", ["vm-upstream", "vm-offline"])
def test_a_vm_renders_none_of_them(resolved: dict[str, dict[str, Any]], host: str) -> None:
    rendered = resolved[host]["rendered"]
    init = _docs(rendered["init"])
    assert "KubeProxyConfiguration" not in init
    assert "failSwapOn" not in init["KubeletConfiguration"]
    assert "imageGCHighThresholdPercent" not in init["KubeletConfiguration"]
    assert "evictionHard" not in init["KubeletConfiguration"]
    assert "restrict_oom_score_adj" not in rendered["containerd_v2"]


def _defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def _leaves(role: str, variable: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """What a default is made of: its own role's defaults followed, the rest as written."""
    defaults = _defaults(role)
    text = str(defaults[variable])
    names = set(re.findall(r"\b([a-z][a-z0-9_]+)\b", text))
    out = {text}
    for name in names & set(defaults) - seen - {variable}:
        out |= _leaves(role, name, seen | {variable})
    return out


@pytest.mark.parametrize("variable", sorted(CONTAINER_ONLY))
def test_a_container_setting_is_gated_on_a_fact_in_its_defaults(variable: str) -> None:
    role = next(r for r in ("containerd", "kubeadm_control_plane") if variable in _defaults(r))
    text = " ".join(_leaves(role, variable))
    assert "ansible_facts[" in text, f"{variable} is not derived from the host's facts"
    for forbidden in (
        "cluster_bundle_dir",
        "inventory_hostname",
        "group_names",
        "groups[",
        "canarylab_target",
        "provider",
    ):
        assert forbidden not in text, f"{variable} depends on {forbidden}"


def test_modprobe_is_gated_on_the_container_fact() -> None:
    """A container has no /proc/modules: k8s_prereqs loads no module there (its facts say so)."""
    main = yaml.safe_load((ROOT / "roles/k8s_prereqs/tasks/main.yml").read_text())
    fact = next(t for t in main if "k8s_prereqs_in_container" in (t.get("ansible.builtin.set_fact") or {}))
    text = fact["ansible.builtin.set_fact"]["k8s_prereqs_in_container"]
    assert "ansible_facts['virtualization_type']" in text
    assert "ansible_facts['virtualization_role']" in text
    # set before the modules are loaded
    names = [t.get("name") for t in main]
    assert names.index(fact["name"]) < names.index("Kernel modules")
    tasks = yaml.safe_load((ROOT / "roles/k8s_prereqs/tasks/modules.yml").read_text())
    modprobe = next(t for t in tasks if "community.general.modprobe" in t)
    assert "not k8s_prereqs_in_container | default(false)" in modprobe["when"]


def test_every_container_line_says_why() -> None:
    """Each container-only default carries a comment saying why, just above it."""
    for role, variables in {
        "containerd": ["containerd_restrict_oom_score_adj"],
        "kubeadm_control_plane": [v for v in CONTAINER_ONLY if v.startswith("kubeadm_control_plane")],
    }.items():
        lines = (ROOT / "roles" / role / "defaults" / "main.yml").read_text().splitlines()
        for variable in variables:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{variable}:"))
            comment = []
            for line in reversed(lines[:at]):
                if not line.startswith("#"):
                    break
                comment.append(line)
            assert re.search(r"container|default route", " ".join(comment)), f"{role}: {variable} has no why"


# --- the bundle's check (roles/cluster) --------------------------------------------------------

CHECK_PLAYBOOK = """
- name: The cluster role's check of the bundle
  hosts: vm-offline
  gather_facts: false
  roles: [cluster]
"""


def _check(tmp_path: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    return run_playbook(tmp_path, _inventory(tmp_path, bundle), CHECK_PLAYBOOK)


def test_a_complete_bundle_passes_the_check(tmp_path: Path) -> None:
    result = _check(tmp_path, write_bundle(tmp_path / "bundle", fake_manifest()))
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("manifest", "says"),
    [
        (None, "manifest.json is missing"),
        ({"schema": 2}, "not of schema 1"),
        ({"complete": False, "missing": ["image-etcd"]}, "incomplete (not built: image-etcd)"),
        ("drop-helm", "lacks helm"),
    ],
    ids=["missing", "schema", "incomplete", "item"],
)
def test_a_missing_or_partial_bundle_is_refused_with_what_to_run(
    tmp_path: Path, manifest: dict[str, Any] | str | None, says: str
) -> None:
    bundle = tmp_path / "bundle"
    if manifest == "drop-helm":
        data = fake_manifest()
        data["items"] = [i for i in data["items"] if i["name"] != "helm"]
        write_bundle(bundle, data)
    elif isinstance(manifest, dict):
        write_bundle(bundle, fake_manifest(**manifest))
    else:
        bundle.mkdir()
    result = _check(tmp_path, bundle)
    assert result.returncode != 0
    messages = " ".join(re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', result.stdout))
    assert says in messages, messages
    assert "canarylab bundle build" in messages


# --- Istio: the bundle's charts and images; vanilla Envoy's settings follow bundle_istio_proxy -----

VANILLA_ENV = {"PILOT_ENABLE_METADATA_EXCHANGE": "false", "PILOT_ENABLE_ALPN_FILTER": "false"}


@pytest.mark.parametrize("host", ["vm-upstream", "ct-upstream"])
def test_istio_without_a_bundle_is_the_vm_labs(resolved: dict[str, dict[str, Any]], host: str) -> None:
    r = resolved[host]
    assert r["istio_offline_charts"] is False
    assert r["istio_chart_refs"] == {"base": "base", "istiod": "istiod", "gateway": "gateway"}
    assert r["istio_chart_version"] == PINS["istio_version"]
    assert r["istio_proxy"] == "istio-proxy"
    values = r["istio_istiod_release_values"]
    # Istio's own images and filters, as before the container lab
    assert "hub" not in values["global"]
    assert "telemetry" not in values
    assert values["pilot"]["env"] == {}
    assert "defaultProviders" not in values["meshConfig"]
    assert "imagePullPolicy" not in r["istio_gateway_release_values"]


def test_istio_from_a_bundle_runs_its_images_with_vanilla_envoys_settings(
    resolved: dict[str, dict[str, Any]],
) -> None:
    r = resolved["ct-offline"]
    version = PINS["bundle_istio_chart_version"]
    assert r["istio_offline_charts"] is True
    assert r["istio_chart_version"] == version
    assert r["istio_chart_refs"] == {c: f"/var/cache/canarylab/istio/{c}-{version}.tgz" for c in ISTIO_CHARTS}
    assert r["istio_proxy"] == PINS["bundle_istio_proxy"] == "envoy"
    assert r["istio_proxy_image"] == IMAGES["image-istio-proxyv2"]
    assert r["istio_proxy_image"] in r["istio_available_images"]
    values = r["istio_istiod_release_values"]
    assert values["global"]["hub"] == PINS["bundle_istio_image_hub"]
    assert values["global"]["tag"] == PINS["bundle_istio_image_tag"]
    assert values["global"]["imagePullPolicy"] == "Never"
    assert values["pilot"]["env"] == VANILLA_ENV
    assert values["telemetry"] == {"enabled": False}
    assert values["meshConfig"]["defaultProviders"] == {"metrics": []}
    # the role's own settings survive the merge
    assert values["meshConfig"]["accessLogFile"] == "/dev/stdout"
    assert values["pilot"]["autoscaleEnabled"] is False
    gateway = r["istio_gateway_release_values"]
    assert gateway["imagePullPolicy"] == "Never"
    # the first address of the inventory's pool (roles/canarylab)
    assert gateway["service"]["annotations"] == {"metallb.universe.tf/loadBalancerIPs": "10.9.9.200"}


def test_istio_proxy_pinned_to_istios_own_keeps_every_filter(resolved: dict[str, dict[str, Any]]) -> None:
    r = resolved["ct-offline-istio-proxy"]
    assert r["istio_offline_charts"] is True  # still the bundle's charts and images
    assert r["istio_proxy"] == "istio-proxy"
    values = r["istio_istiod_release_values"]
    assert values["pilot"]["env"] == {}
    assert "telemetry" not in values
    assert "defaultProviders" not in values["meshConfig"]


# --- monitoring: kube-prometheus-stack upstream, the bundle's operator offline, selecting alike -----


def test_monitoring_follows_the_bundle(resolved: dict[str, dict[str, Any]]) -> None:
    assert resolved["vm-upstream"]["monitoring_method"] == "kube-prometheus-stack"
    assert resolved["ct-upstream"]["monitoring_method"] == "kube-prometheus-stack"
    assert resolved["ct-offline"]["monitoring_method"] == "operator"
    assert resolved["ct-offline"]["monitoring_prometheus_image"] == (
        f"quay.io/prometheus/prometheus:v{PINS['bundle_prometheus_version']}"
    )


def kube_prometheus_stack_selectors(spec: dict[str, Any], release: str) -> dict[str, Any]:
    """The selectors kube-prometheus-stack gives its Prometheus from ``prometheusSpec`` values.

    Its values.yaml says it: with ``<kind>SelectorNilUsesHelmValues`` true (the default), a nil
    or {} ``<kind>Selector`` becomes ``matchLabels: {release: <release name>}``; false, the
    selector as given, {} when empty.  A namespace selector is the given one, or {}, which the
    operator reads as the Prometheus's own namespace only when it is null and as every
    namespace when it is {}.  (The chart is not reachable here, so this is its documented
    logic, not a rendering of it.)
    """
    out: dict[str, Any] = {}
    for kind in ("serviceMonitor", "podMonitor", "probe", "scrapeConfig", "rule"):
        given = spec.get(f"{kind}Selector") or {}
        nil_uses_helm = spec.get(f"{kind}SelectorNilUsesHelmValues", True)
        out[f"{kind}Selector"] = given or ({"matchLabels": {"release": release}} if nil_uses_helm else {})
        out[f"{kind}NamespaceSelector"] = spec.get(f"{kind}NamespaceSelector", {})
    return out


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes' LabelSelector: None selects nothing, {} everything; matchLabels and matchExpressions."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


SELECTOR_OF = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor", "PrometheusRule": "rule"}


def selected(
    prometheus: dict[str, Any], objects: list[dict[str, Any]], namespace_labels: dict[str, str]
) -> set[str]:
    """The monitoring objects a Prometheus spec picks up, as the operator selects them."""
    out = set()
    for obj in objects:
        kind = SELECTOR_OF.get(obj["kind"])
        if kind is None:
            continue
        labels = obj["metadata"].get("labels") or {}
        if label_selector_matches(prometheus.get(f"{kind}Selector"), labels) and label_selector_matches(
            prometheus.get(f"{kind}NamespaceSelector"), namespace_labels
        ):
            out.add(f"{obj['kind']}/{obj['metadata']['name']}")
    return out


@pytest.fixture(scope="module")
def chart_objects() -> list[dict[str, Any]]:
    helm = ROOT / ".cache" / "bin" / "helm"
    out = subprocess.run(
        [str(helm), "template", "canarylab", str(ROOT / "charts" / "canarylab"), "--namespace", "canarylab"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_both_prometheuses_select_every_monitoring_object_of_the_chart(
    resolved: dict[str, dict[str, Any]], chart_objects: list[dict[str, Any]]
) -> None:
    wanted = {f"{o['kind']}/{o['metadata']['name']}" for o in chart_objects if o["kind"] in SELECTOR_OF}
    assert len([w for w in wanted if w.startswith("ServiceMonitor/")]) >= 2, wanted
    assert any(w.startswith("PrometheusRule/") for w in wanted), wanted
    namespace = {"kubernetes.io/metadata.name": "canarylab", "istio-injection": "enabled"}
    operator = _docs(resolved["ct-offline"]["rendered"]["prometheus"])["Prometheus"]["spec"]
    values = yaml.safe_load(resolved["vm-upstream"]["rendered"]["kube_prometheus_stack"])
    stack = kube_prometheus_stack_selectors(values["prometheus"]["prometheusSpec"], "kube-prometheus-stack")
    assert selected(operator, chart_objects, namespace) == wanted
    assert selected(stack, chart_objects, namespace) == wanted
    # the same selectors, field for field
    assert {k: v for k, v in operator.items() if k.endswith("Selector")} == stack
    # and the check can tell: kube-prometheus-stack's default (the release-label trap) picks none
    trapped = kube_prometheus_stack_selectors({}, "kube-prometheus-stack")
    assert selected(trapped, chart_objects, namespace) == set()


# --- Grafana: kube-prometheus-stack's upstream, the stand-in of its API offline, wired alike ------


def test_the_grafana_standin_finds_the_charts_dashboard_as_the_stacks_sidecar_would(
    resolved: dict[str, dict[str, Any]], chart_objects: list[dict[str, Any]]
) -> None:
    standin = load_grafana_standin()
    docs = _docs(resolved["ct-offline"]["rendered"]["grafana_standin"])
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "(secret)") for e in container["env"]}
    assert (
        container["image"] == f"localhost/canarylab/grafana-standin:{PINS['bundle_grafana_standin_version']}"
    )
    assert {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e
    } == {
        "GF_SECURITY_ADMIN_USER": "admin-user",
        "GF_SECURITY_ADMIN_PASSWORD": "admin-password",
    }
    sidecar = yaml.safe_load(resolved["vm-upstream"]["rendered"]["kube_prometheus_stack"])["grafana"][
        "sidecar"
    ]
    stack = sidecar["dashboards"]
    # the stand-in's sidecar settings are kube-prometheus-stack's, value for value
    assert (env["LABEL"], env["LABEL_VALUE"], env["FOLDER_ANNOTATION"]) == (
        stack["label"],
        stack["labelValue"],
        stack["folderAnnotation"],
    )
    assert stack["searchNamespace"] == "ALL"
    # and it imports the chart's dashboard ConfigMap into the chart's folder, its datasource resolved
    datasources = json.loads(docs["ConfigMap"]["data"]["datasources.yaml"])["datasources"]
    state = standin.State(datasources=datasources)
    settings = standin.Settings(
        admin_user="a",
        admin_password="b",
        label=env["LABEL"],
        label_value=env["LABEL_VALUE"],
        folder_annotation=env["FOLDER_ANNOTATION"],
    )
    configmaps = [
        (
            o["metadata"].get("namespace", "canarylab"),
            o["metadata"]["name"],
            o["metadata"].get("labels") or {},
            o["metadata"].get("annotations") or {},
            o.get("data") or {},
        )
        for o in chart_objects
        if o["kind"] == "ConfigMap"
    ]
    state.sync(configmaps, settings)
    assert state.rejected == {}
    chart_dashboard = json.loads(
        (ROOT / "charts" / "canarylab" / "dashboards" / "canarylab-latency.json").read_text()
    )
    [imported] = state.dashboards.values()
    assert imported["dashboard"]["uid"] == chart_dashboard["uid"]
    assert state.folders[imported["folder_uid"]] == "canarylab"
    # the datasource is kube-prometheus-stack's default, at the operator method's Prometheus Service
    [ds] = datasources
    assert (ds["name"], ds["uid"], ds["type"], ds["isDefault"]) == (
        "Prometheus",
        "prometheus",
        "prometheus",
        True,
    )
    service = _docs(resolved["ct-offline"]["rendered"]["prometheus"])["Service"]
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert ds["url"] == f"http://{name}.{namespace}:{service['spec']['ports'][0]['port']}/"
    # on Grafana's fixed address, port 80, as kube-prometheus-stack's Grafana Service
    svc = docs["Service"]
    grafana_ip = resolved["ct-offline"]["monitoring_grafana_ip"]
    assert grafana_ip.startswith(resolved["ct-offline"]["canarylab_loadbalancer_base"] + ".")
    assert svc["metadata"]["annotations"]["metallb.universe.tf/loadBalancerIPs"] == grafana_ip
    assert svc["spec"]["ports"][0]["port"] == 80


def test_each_node_imports_only_the_images_its_pods_can_run(tmp_path: Path) -> None:
    """The controller keeps its taint: it gets neither MetalLB's controller nor istiod (Istio's proxy
    it does get: a meshed pod may run there); a worker never runs the control plane.  Everything
    else goes to both."""
    manifest = fake_manifest()
    manifest["items"].append(  # an image the role lists that a bundle may lack is skipped
        {
            **manifest["items"][-1],
            "name": "image-prometheus",
            "image": {"ref": "quay.io/x/prometheus:v1", "id": "sha256:" + _sha("p")},
        }
    )
    bundle = write_bundle(tmp_path / "bundle", manifest)
    node = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inventory = tmp_path / "lab.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "k8s_cluster": {
                            "children": {
                                "controller": {"hosts": {"c1": node}},
                                "workers": {"hosts": {"w1": node}},
                            }
                        }
                    },
                    "vars": {"cluster_bundle_dir": str(bundle)},
                }
            }
        )
    )
    play = [
        {
            "name": "Images per node",
            "hosts": "k8s_cluster",
            "gather_facts": False,
            "roles": ["cluster"],
            "tasks": [
                {
                    "name": "Node images",
                    "ansible.builtin.debug": {"msg": "{{ cluster_bundle_node_images | to_json }}"},
                    "tags": ["resolved"],
                }
            ],
        }
    ]
    images = debug_messages(
        run_playbook(tmp_path, inventory, yaml.safe_dump(play), "--tags", "resolved"), "Node images"
    )
    got = {h: {i["name"] for i in listed} for h, listed in images.items()}
    everything = {*IMAGES.values(), "quay.io/x/prometheus:v1"}
    control_plane = {
        IMAGES[f"image-{n}"] for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
    }
    workloads = {IMAGES[f"image-{n}"] for n in ("metallb-controller", "istio-pilot")}
    workloads.add("quay.io/x/prometheus:v1")
    assert got["c1"] == everything - workloads
    assert got["w1"] == everything - control_plane
    # the entries are cluster_bundle_images' own (name, src, id, sha256)
    [entry] = [i for i in images["w1"] if i["name"] == IMAGES["image-kube-proxy"]]
    assert set(entry) == {"name", "src", "id", "sha256"}
