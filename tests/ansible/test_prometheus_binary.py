"""roles/prometheus_binary on this machine: the prometheus on PATH is used as
is; the download branch verifies, unpacks and is idempotent (from a local file
URL, with small stand-in scripts for the binaries); a checksum mismatch or a
missing checksum is refused.  The download of the real binaries over HTTP runs
in molecule (roles/prometheus_binary/molecule/default)."""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PINS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / "versions.yml").read_text())
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
KEY = f"{platform.system().lower()}-{ARCH}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stand_in_release(tmp_path: Path, version: str) -> Path:
    """A tarball with the release layout whose binaries are scripts that print a version."""
    name = f"prometheus-{version}.{KEY}"
    top = tmp_path / "release" / name
    top.mkdir(parents=True)
    for tool in ("prometheus", "promtool"):
        script = top / tool
        script.write_text(f"#!/bin/sh\necho '{tool}, version {version} (branch: stand-in)'\n")
        script.chmod(0o755)
    tarball = tmp_path / "release" / f"{name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(top, arcname=name)
    return tarball


def test_prometheus_on_path_is_used_as_is(run_playbook, tmp_path):
    on_path = shutil.which("prometheus")
    if on_path is None or shutil.which("promtool") is None:
        pytest.fail("prometheus/promtool are not on PATH: run `make setup` and source scripts/env.sh")
    out = subprocess.run([on_path, "--version"], capture_output=True, text=True, check=True)
    version = re.search(r"prometheus, version (\S+)", out.stdout + out.stderr)
    assert version
    cache = tmp_path / "cache"
    for _ in range(2):
        run = run_playbook("prometheus_binary.yml", {"prometheus_binary_cache_dir": str(cache)})
        assert run.rc == 0, run.tail()
        assert run.changed == 0, run.tail()
        assert run.report["prometheus_binary_source"] == "path"
        assert run.report["prometheus_bin"] == on_path
        assert run.report["promtool_bin"] == shutil.which("promtool")
        assert run.report["prometheus_binary_version"] == version.group(1)
    assert not cache.exists()


def test_download_verifies_unpacks_then_nothing_to_do(run_playbook, tmp_path):
    version = PINS["prometheus_version"]
    tarball = _stand_in_release(tmp_path, version)
    cache = tmp_path / "cache"
    extra = {
        "prometheus_binary_use_path": False,
        "prometheus_binary_cache_dir": str(cache),
        # placeholders filled in by the role (Path.as_uri() would escape the braces)
        "prometheus_binary_url": f"file://{tarball.parent}/prometheus-{{version}}.{{os}}-{{arch}}.tar.gz",
        "prometheus_checksums": {KEY: _sha256(tarball)},
    }
    first = run_playbook("prometheus_binary.yml", extra)
    assert first.rc == 0, first.tail()
    assert first.changed >= 2  # directory, download, unpack
    target = cache / f"prometheus-{version}"
    assert first.report == {
        "prometheus_bin": str(target / "prometheus"),
        "promtool_bin": str(target / "promtool"),
        "prometheus_binary_source": "download",
        "prometheus_binary_version": version,
    }
    assert _sha256(target / tarball.name) == _sha256(tarball)

    second = run_playbook("prometheus_binary.yml", extra)
    assert second.rc == 0, second.tail()
    assert second.changed == 0, second.tail()


def test_download_checksum_mismatch_is_refused_and_nothing_unpacked(run_playbook, tmp_path):
    version = PINS["prometheus_version"]
    tarball = _stand_in_release(tmp_path, version)
    cache = tmp_path / "cache"
    wrong = PINS["prometheus_checksums"][KEY]  # the real release's sum, not the stand-in's
    run = run_playbook(
        "prometheus_binary.yml",
        {
            "prometheus_binary_use_path": False,
            "prometheus_binary_cache_dir": str(cache),
            "prometheus_binary_url": tarball.as_uri(),
            "prometheus_checksums": {KEY: wrong},
        },
    )
    assert run.rc != 0
    assert "REFUSED" in run.failure_messages, run.tail()
    assert wrong in run.failure_messages
    assert not (cache / f"prometheus-{version}" / "prometheus").exists()
    assert not (cache / f"prometheus-{version}" / tarball.name).exists()


def test_download_without_a_pinned_checksum_fails_clearly(run_playbook, tmp_path):
    run = run_playbook(
        "prometheus_binary.yml",
        {
            "prometheus_binary_use_path": False,
            "prometheus_binary_cache_dir": str(tmp_path / "cache"),
            "prometheus_checksums": {},
        },
    )
    assert run.rc != 0
    assert f"no sha256 for prometheus {PINS['prometheus_version']} {KEY}" in run.failure_messages, run.tail()


def test_pins_cover_the_four_platforms():
    assert set(PINS["prometheus_checksums"]) == {"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in PINS["prometheus_checksums"].values())
