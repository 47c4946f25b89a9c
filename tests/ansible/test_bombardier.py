"""roles/bombardier on this machine: go install at the pin, the release method
from a local file URL, and the refusals (checksum mismatch, missing checksum,
a v2 tag for go install).  The release method's HTTP download runs in molecule
(roles/bombardier/molecule/default)."""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PINS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / "versions.yml").read_text())
HOST_BOMBARDIER = ROOT / ".cache" / "bin" / "bombardier"


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        pytest.fail("Go is not installed: scripts/setup.sh needs it to build bombardier")
    return go


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _host_key() -> str:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    return f"{platform.system().lower()}-{arch}"


def _asset() -> Path:
    if not HOST_BOMBARDIER.is_file():
        pytest.fail(f"{HOST_BOMBARDIER} is missing: run `make setup`")
    return HOST_BOMBARDIER


def test_go_install_of_the_pin_then_nothing_to_do(run_playbook, tmp_path):
    go = _go()
    bin_dir = tmp_path / "bin"
    first = run_playbook("bombardier.yml", {"bombardier_bin_dir": str(bin_dir)})
    assert first.rc == 0, first.tail()
    assert first.report["bombardier_method"] == "go"
    assert first.report["bombardier_bin"] == str(bin_dir / "bombardier")
    assert first.changed >= 1
    modinfo = subprocess.run(
        [go, "version", "-m", str(bin_dir / "bombardier")], capture_output=True, text=True, check=False
    )
    assert f"github.com/codesenberg/bombardier\t{PINS['bombardier_version']}\t" in modinfo.stdout

    second = run_playbook("bombardier.yml", {"bombardier_bin_dir": str(bin_dir)})
    assert second.rc == 0, second.tail()
    assert second.changed == 0, second.tail()


def test_release_method_verifies_then_nothing_to_do(run_playbook, tmp_path):
    asset = _asset()
    bin_dir = tmp_path / "bin"
    extra = {
        "bombardier_bin_dir": str(bin_dir),
        "bombardier_install_method": "release",
        "bombardier_release_url": asset.as_uri(),
        "bombardier_checksums": {_host_key(): _sha256(asset)},
    }
    first = run_playbook("bombardier.yml", extra)
    assert first.rc == 0, first.tail()
    assert first.report["bombardier_method"] == "release"
    assert first.changed >= 1
    installed = bin_dir / "bombardier"
    assert _sha256(installed) == _sha256(asset)
    assert installed.stat().st_mode & 0o111
    assert subprocess.run([str(installed), "--help"], capture_output=True, check=False).returncode == 0

    second = run_playbook("bombardier.yml", extra)
    assert second.rc == 0, second.tail()
    assert second.changed == 0, second.tail()


def test_checksum_mismatch_is_refused_and_nothing_installed(run_playbook, tmp_path):
    asset = _asset()
    bin_dir = tmp_path / "bin"
    wrong = hashlib.sha256(b"not bombardier").hexdigest()
    run = run_playbook(
        "bombardier.yml",
        {
            "bombardier_bin_dir": str(bin_dir),
            "bombardier_install_method": "release",
            "bombardier_release_url": asset.as_uri(),
            "bombardier_checksums": {_host_key(): wrong},
        },
    )
    assert run.rc != 0
    messages = run.failure_messages
    assert "REFUSED" in messages, run.tail()
    assert wrong in messages
    assert "Nothing was installed" in messages
    assert not (bin_dir / "bombardier").exists()


def test_release_method_without_a_pinned_checksum_fails_clearly(run_playbook, tmp_path):
    bin_dir = tmp_path / "bin"
    run = run_playbook(
        "bombardier.yml",
        {
            "bombardier_bin_dir": str(bin_dir),
            "bombardier_install_method": "release",
            "bombardier_checksums": {},
        },
    )
    assert run.rc != 0
    expected = f"no sha256 for bombardier {PINS['bombardier_version']} {_host_key()}"
    assert expected in run.failure_messages, run.tail()
    assert not (bin_dir / "bombardier").exists()


def test_go_install_of_a_v2_tag_is_refused_before_running_go(run_playbook, tmp_path):
    _go()
    bin_dir = tmp_path / "bin"
    run = run_playbook(
        "bombardier.yml",
        {
            "bombardier_bin_dir": str(bin_dir),
            "bombardier_install_method": "go",
            "bombardier_version": "v2.0.2",
        },
    )
    assert run.rc != 0
    assert "has no /v2 suffix" in run.failure_messages, run.tail()
    assert not (bin_dir / "bombardier").exists()
