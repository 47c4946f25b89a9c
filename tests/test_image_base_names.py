"""Every default base image of the service images is a fully qualified name.

Debian's and Ubuntu's buildah ship no `unqualified-search-registries`, so a
short name such as `python:3.11-slim-bookworm` does not resolve in the lab VMs
("short-name resolution enforced but cannot prompt").  The defaults live in the
Containerfiles (ARG BASE_IMAGE), scripts/build-images.sh and the
canarylab_images role; they must agree, too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parent.parent


def _defaults() -> dict[str, str]:
    found: dict[str, str] = {}
    for containerfile in sorted(ROOT.glob("services/*/Containerfile")):
        for m in re.finditer(r"^ARG BASE_IMAGE=(\S+)", containerfile.read_text(), re.M):
            found[str(containerfile.relative_to(ROOT))] = m.group(1)
    script = (ROOT / "scripts" / "build-images.sh").read_text()
    script_default = re.search(r"CANARYLAB_SERVICE_BASE_IMAGE:-([^}]+)\}", script)
    assert script_default, "scripts/build-images.sh: no default for CANARYLAB_SERVICE_BASE_IMAGE"
    found["scripts/build-images.sh"] = script_default.group(1)
    role = yaml.safe_load((ROOT / "roles" / "canarylab_images" / "defaults" / "main.yml").read_text())
    found["roles/canarylab_images/defaults/main.yml"] = role["canarylab_images_base_image"]
    return found


def fully_qualified(reference: str) -> bool:
    """containers-registries.conf(5): the first component names a registry when it has a '.' or ':'
    or is `localhost`; otherwise the name is short."""
    first, sep, _ = reference.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def test_the_rule_tells_short_names_from_qualified_ones() -> None:
    assert not fully_qualified("python:3.11-slim-bookworm")
    assert not fully_qualified("library/python:3.11")
    assert fully_qualified("docker.io/library/python:3.11-slim-bookworm")
    assert fully_qualified("localhost/canarylab-debian12-systemd:latest")
    assert fully_qualified("registry.local:5000/python:3.11")


def test_every_default_base_image_is_fully_qualified() -> None:
    defaults = _defaults()
    assert len(defaults) == len(list(ROOT.glob("services/*/Containerfile"))) + 2, defaults
    short = {where: ref for where, ref in defaults.items() if not fully_qualified(ref)}
    assert not short, f"short base image names (use docker.io/library/...): {short}"


def test_the_defaults_agree() -> None:
    defaults = _defaults()
    assert len(set(defaults.values())) == 1, defaults
