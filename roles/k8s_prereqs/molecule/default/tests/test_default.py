"""Verify of roles/k8s_prereqs in a container: exactly what a container lets the role do."""

from __future__ import annotations

SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.ipv4.ip_forward": "1",
}


def test_modules_are_loaded_at_boot(host):
    f = host.file("/etc/modules-load.d/kubernetes.conf")
    assert f.is_file
    lines = [line for line in f.content_string.splitlines() if line and not line.startswith("#")]
    assert lines == ["overlay", "br_netfilter"]


def test_sysctl_file_holds_every_value(host):
    content = host.file("/etc/sysctl.d/99-kubernetes.conf").content_string
    for name, value in SYSCTLS.items():
        assert f"{name}={value}" in content


def test_sysctls_are_applied(host):
    for name, value in SYSCTLS.items():
        assert host.file("/proc/sys/" + name.replace(".", "/")).content_string.strip() == value, name


def test_swap_is_commented_out_of_fstab(host):
    lines = host.file("/etc/fstab").content_string.splitlines()
    assert not [line for line in lines if " swap " in line and not line.lstrip().startswith("#")]
    assert any(line.startswith("# /swap.img none swap") for line in lines)


def test_swap_target_is_masked(host):
    assert host.run("systemctl is-enabled swap.target").stdout.strip() == "masked"


def test_etc_hosts_lists_the_nodes(host):
    content = host.file("/etc/hosts").content_string
    assert "192.168.56.10 cl-controller" in content
    assert "192.168.56.11 cl-worker-1" in content
    assert content.count("canarylab cluster nodes") == 2  # BEGIN and END, once


def test_timesyncd_is_installed_and_enabled(host):
    assert host.package("systemd-timesyncd").is_installed
    assert host.service("systemd-timesyncd").is_enabled


def test_base_packages(host):
    for name in ("conntrack", "iptables", "ca-certificates", "gpg"):
        assert host.package(name).is_installed, name
