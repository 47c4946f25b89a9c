"""Verify of roles/containerd_images.

The new build replaced the old one, the OCI archive is in, no copy is left.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

IMAGES = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "images"
DOCKER = "localhost/canarylab/molecule-docker:1"
OCI = "localhost/canarylab/molecule-oci:1"


def _listed(host) -> dict[str, str]:
    lines = host.check_output("ctr -n k8s.io images ls").splitlines()[1:]
    return {line.split()[0]: line.split()[2] for line in lines}


def test_both_images_are_listed_in_the_k8s_io_namespace(host):
    assert {DOCKER, OCI} <= set(_listed(host))


def test_the_reference_names_the_new_build(host):
    """The config digest in the manifest containerd wrote is the new archive's image ID."""
    manifest = json.loads(host.check_output(f"ctr -n k8s.io content get {_listed(host)[DOCKER]}"))
    assert manifest["config"]["digest"] == (IMAGES / "new" / "id").read_text().strip()
    assert manifest["config"]["digest"] != (IMAGES / "old" / "id").read_text().strip()


def test_the_listed_digest_is_not_the_image_id(host):
    """What `ctr images ls` shows for a docker-archive is the digest of a manifest containerd
    wrote itself, not the image ID: the role must not compare the two."""
    assert _listed(host)[DOCKER] != (IMAGES / "new" / "id").read_text().strip()


def test_the_new_build_is_unpacked(host):
    mount = host.run(
        f"set -e; d=$(mktemp -d); ctr -n k8s.io images mount {DOCKER} $d >/dev/null;"
        " cat $d/hello.txt; ctr -n k8s.io images unmount $d >/dev/null"
    )
    assert mount.rc == 0, mount.stderr
    assert mount.stdout.strip() == "canarylab molecule new"


def test_no_copy_is_left_on_the_node(host):
    d = host.file("/var/lib/canarylab/images")
    assert d.is_directory
    assert host.check_output("ls -A /var/lib/canarylab/images") == ""
