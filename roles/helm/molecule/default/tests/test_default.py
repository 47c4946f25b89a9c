"""Verify of roles/helm: the stand-in tarball downloaded, verified, unpacked and installed."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[5]
PINS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / "versions.yml").read_text())
HOST_HELM = ROOT / ".cache" / "bin" / "helm"


def test_helm_is_the_binary_from_the_tarball(host):
    f = host.file("/usr/local/bin/helm")
    assert f.is_file
    assert f.user == "root"
    assert f.mode == 0o755
    assert f.sha256sum == hashlib.sha256(HOST_HELM.read_bytes()).hexdigest()


def test_installed_helm_runs(host):
    # The stand-in is the host's helm, built from source at the pinned version;
    # such a build reports only the minor (v3.19), release builds the full version.
    out = host.check_output("/usr/local/bin/helm version --short")
    expected = subprocess.run([HOST_HELM, "version", "--short"], capture_output=True, text=True, check=True)
    assert out.strip() == expected.stdout.strip()
    minor = ".".join(PINS["helm_version"].split(".")[:2])
    assert out.startswith(minor)


def test_tarball_was_kept_in_the_download_dir(host):
    version = PINS["helm_version"]
    tarballs = host.check_output(f"ls /var/cache/canarylab/helm/helm-{version}-linux-*.tar.gz")
    assert tarballs.strip()
