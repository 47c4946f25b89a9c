"""Verify of roles/kubernetes_packages, scenario binaries.

Installed as pkgs.k8s.io's packages install them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[5]
PINS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / "versions.yml").read_text())
BUNDLE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "bundle"
NAMES = ["kubeadm", "kubelet", "kubectl"]


def test_binaries_are_the_bundle_s(host):
    for name in NAMES:
        f = host.file(f"/usr/bin/{name}")
        assert f.is_file
        assert f.user == "root"
        assert f.mode == 0o755
        assert f.sha256sum == hashlib.sha256((BUNDLE / name).read_bytes()).hexdigest()
        assert host.check_output(f"/usr/bin/{name}") == f"stand-in {name} v{PINS['kubernetes_version']}"


def test_checked_copies_are_kept_for_the_next_run(host):
    for name in NAMES:
        assert host.file(f"/var/cache/canarylab/kubernetes/v{PINS['kubernetes_version']}/{name}").is_file


def test_kubelet_unit_and_kubeadm_drop_in(host):
    unit = host.file("/usr/lib/systemd/system/kubelet.service").content_string
    assert "ExecStart=/usr/bin/kubelet\n" in unit
    assert "WantedBy=multi-user.target" in unit
    drop_in = host.file("/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").content_string
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in drop_in
    assert "EnvironmentFile=-/etc/default/kubelet" in drop_in
    # systemd was reloaded: the drop-in's ExecStart is the one it knows
    show = host.check_output(
        "systemctl show kubelet --property=ExecStart --property=Environment --property=DropInPaths"
    )
    assert "argv[]=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS" in show
    assert "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf" in show
    assert "DropInPaths=/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" in show


def test_kubelet_is_enabled_but_left_to_kubeadm(host):
    kubelet = host.service("kubelet")
    assert kubelet.is_enabled
    assert not host.file("/var/lib/kubelet/config.yaml").exists


def test_cni_plugins_are_linked_where_containerd_looks(host):
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        link = host.file(f"/opt/cni/bin/{plugin}")
        assert link.is_symlink
        assert link.linked_to == f"/usr/lib/cni/{plugin}"
