"""Verify of roles/canarylab_images, scenario default: the OCI archive is in containerd's k8s.io namespace."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

IMAGE = "localhost/canarylab/molecule-tiny:1"


def test_image_is_listed_in_the_k8s_io_namespace(host):
    names = host.check_output("ctr -n k8s.io images ls -q").split()
    assert IMAGE in names


def test_image_is_not_in_the_default_namespace(host):
    assert IMAGE not in host.check_output("ctr -n default images ls -q").split()


def test_image_content_is_complete_and_unpacked(host):
    out = host.check_output(f"ctr -n k8s.io images check name=={IMAGE}")
    assert "complete" in out
    # The kubelet's snapshotter can mount it: the one file of the image is there.
    mount = host.run(
        f"set -e; d=$(mktemp -d); ctr -n k8s.io images mount {IMAGE} $d >/dev/null;"
        " cat $d/hello.txt; ctr -n k8s.io images unmount $d >/dev/null"
    )
    assert mount.rc == 0, mount.stderr
    assert mount.stdout.strip() == "canarylab molecule"


def test_copied_archive_is_removed(host):
    assert not host.file("/var/lib/canarylab/images/tiny.tar").exists


def test_archive_was_fetched_to_the_ansible_host_unchanged(host):
    """The fetch step: the copy on the Ansible host is the node's archive, byte for byte."""
    node_archive = "/var/lib/canarylab/build/images/molecule-tiny_1.tar"
    fetched = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "fetched" / "molecule-tiny_1.tar"
    assert fetched.is_file()
    node_sha = host.check_output(f"sha256sum {node_archive}").split()[0]
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == node_sha


def test_archive_is_readable_without_become(host):
    assert host.file("/var/lib/canarylab/build/images/molecule-tiny_1.tar").mode == 0o644
