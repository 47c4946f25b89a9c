"""Verify of roles/kubernetes_packages as far as the repository configuration."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[5]
PINS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / "versions.yml").read_text())
STAND_IN = Path(__file__).resolve().parents[1] / "files" / "stand-in-Release.key"
VERSION = PINS["kubernetes_version"]
MINOR = ".".join(VERSION.split(".")[:2])
KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.asc"


def test_keyring_is_the_downloaded_key(host):
    f = host.file(KEYRING)
    assert f.is_file
    assert f.mode == 0o644
    assert f.sha256sum == hashlib.sha256(STAND_IN.read_bytes()).hexdigest()


def test_source_points_at_the_pinned_minor(host):
    fields = dict(
        line.split(": ", 1)
        for line in host.file("/etc/apt/sources.list.d/kubernetes.sources").content_string.splitlines()
        if ": " in line
    )
    assert fields["Types"] == "deb"
    assert fields["URIs"] == f"https://pkgs.k8s.io/core:/stable:/v{MINOR}/deb/"
    assert fields["Suites"] == "/"
    assert fields["Signed-By"] == KEYRING


def test_packages_are_pinned_to_the_version(host):
    content = host.file("/etc/apt/preferences.d/kubernetes").content_string
    assert "Package: kubelet kubeadm kubectl" in content
    assert f"Pin: version {VERSION}-*" in content
    assert "Pin-Priority: 1001" in content


def test_nothing_is_installed_in_this_scenario(host):
    for name in ("kubelet", "kubeadm", "kubectl"):
        assert not host.package(name).is_installed
