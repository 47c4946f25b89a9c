"""Verify of roles/prometheus_binary, scenario default: the download branch, from the stand-in."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

#: The host's prometheus: the set-up's Debian build, linked into the clone's .cache/bin.
HOST_PROMETHEUS = Path(__file__).resolve().parents[5] / ".cache" / "bin" / "prometheus"
VERSION_OUT = subprocess.run([str(HOST_PROMETHEUS), "--version"], capture_output=True, text=True, check=True)
_found = re.search(r"prometheus, version ([0-9.]+)", VERSION_OUT.stdout + VERSION_OUT.stderr)
assert _found, VERSION_OUT
VERSION = _found.group(1)
DIR = f"/home/canary/.cache/canarylab/prometheus-{VERSION}"


@pytest.mark.parametrize("name", ["prometheus", "promtool"])
def test_binaries_are_in_the_user_cache_owned_by_the_user(host, name):
    f = host.file(f"{DIR}/{name}")
    assert f.is_file
    assert f.user == "canary"
    assert f.mode & 0o111


def test_tarball_is_cached_and_is_the_served_one(host):
    served = host.file(f"/srv/release/v{VERSION}/prometheus-{VERSION}.linux-amd64.tar.gz")
    cached = host.file(f"{DIR}/prometheus-{VERSION}.linux-amd64.tar.gz")
    assert cached.user == "canary"
    assert cached.sha256sum == served.sha256sum


def test_binaries_run_as_the_user(host):
    prometheus = host.run(f"runuser -u canary -- {DIR}/prometheus --version")
    assert prometheus.rc == 0
    assert f"prometheus, version {VERSION}" in prometheus.stdout + prometheus.stderr
    promtool = host.run(f"runuser -u canary -- {DIR}/promtool --version")
    assert promtool.rc == 0


def test_download_went_through_the_release_url(host):
    log = host.check_output("journalctl --no-pager -u release-mirror")
    assert f"GET /v{VERSION}/prometheus-{VERSION}.linux-amd64.tar.gz" in log


def test_no_prometheus_on_path_and_nothing_as_root(host):
    assert host.run("command -v prometheus").rc != 0
    assert not host.file("/root/.cache/canarylab").exists
