"""Verify of roles/containerd, Debian's package standing in for the pinned release."""

from __future__ import annotations


def test_containerd_runs(host):
    svc = host.service("containerd")
    assert svc.is_enabled
    assert svc.is_running


def test_config_is_version_2_for_containerd_1x(host):
    assert host.check_output("containerd --version").split()[2].startswith("1.")
    content = host.file("/etc/containerd/config.toml").content_string
    assert "version = 2" in content
    assert "SystemdCgroup = true" in content
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in content


def test_running_containerd_read_the_config(host):
    dump = host.check_output("containerd config dump")
    assert "SystemdCgroup = true" in dump
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in dump


def test_a_container_restricts_oom_score_adj(host):
    """The scenario's host is a podman container (its facts say so): root there lacks
    CAP_SYS_RESOURCE, and runc needs the CRI's restrict_oom_score_adj."""
    assert "restrict_oom_score_adj = true" in host.file("/etc/containerd/config.toml").content_string
    assert "restrict_oom_score_adj = true" in host.check_output("containerd config dump")


def test_cri_plugin_is_serving(host):
    out = host.check_output("ctr --address /run/containerd/containerd.sock version")
    assert "Server:" in out
    plugins = host.check_output("ctr plugins ls")
    cri = [
        line for line in plugins.splitlines() if "io.containerd.grpc.v1" in line and " cri " in f" {line} "
    ]
    assert cri
    assert cri[0].split()[-1] == "ok"
