"""Verify of roles/bombardier, scenario default: the release method, for real, from the stand-in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[5]
PINS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / "versions.yml").read_text())
ASSET = ROOT / ".cache" / "bin" / "bombardier"
BIN = "/home/canary/.local/bin/bombardier"


def test_binary_is_in_the_user_bin_dir_owned_by_the_user(host):
    f = host.file(BIN)
    assert f.is_file
    assert f.user == "canary"
    assert f.group == "canary"
    assert f.mode == 0o755


def test_binary_is_the_served_release_asset(host):
    assert host.file(BIN).sha256sum == hashlib.sha256(ASSET.read_bytes()).hexdigest()


def test_binary_runs_as_the_user(host):
    version = host.run(f"runuser -u canary -- {BIN} --version")
    assert version.rc == 0
    # kingpin prints the version on stderr
    assert (version.stdout + version.stderr).startswith("bombardier version")
    usage = host.run(f"runuser -u canary -- {BIN} --help")
    assert usage.rc == 0
    assert "--connections" in usage.stdout + usage.stderr


def test_download_went_through_the_release_url(host):
    log = host.check_output("journalctl --no-pager -u release-mirror")
    assert f"GET /{PINS['bombardier_version']}/bombardier-linux-" in log


def test_nothing_went_to_root(host):
    assert not host.file("/root/.local/bin/bombardier").exists
    assert not host.file("/usr/local/bin/bombardier").exists
