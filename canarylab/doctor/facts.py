"""The thin layer that gathers the doctor's inputs on this host (subprocesses, /proc, sysctl)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from canarylab.doctor.box import host_arch
from canarylab.doctor.checks import Provider
from canarylab.procs import port_in_use

VBOX_NETWORKS_CONF = Path("/etc/vbox/networks.conf")
#: How to install each hypervisor when only its Vagrant plugin is there.
HYPERVISOR_INSTALL = {
    "libvirt": "install libvirt (Debian: apt install libvirt-daemon-system libvirt-clients)",
    "vmware_desktop": "install VMware Workstation/Fusion and the vagrant-vmware-utility",
    "parallels": "install Parallels Desktop (Pro or Business edition)",
}
#: Vagrant plugin of each non-builtin provider.
PROVIDER_PLUGINS = {
    "libvirt": "vagrant-libvirt",
    "vmware_desktop": "vagrant-vmware-desktop",
    "parallels": "vagrant-parallels",
}


def run_text(argv: list[str], timeout: float = 20.0) -> str | None:
    """stdout+stderr of a command, or None when it is missing, fails or hangs."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return (out.stdout + out.stderr).strip()


def tool_path(name: str, root: Path) -> str | None:
    """A tool on PATH, in .cache/bin, or beside this Python (the .venv)."""
    extra = [str(root / ".cache" / "bin"), str(Path(sys.executable).parent)]
    search = os.pathsep.join([os.environ.get("PATH", ""), *extra])
    return shutil.which(name, path=search)


def parse_plugins(text: str | None) -> dict[str, str]:
    """``vagrant plugin list`` -> {plugin: version}."""
    plugins: dict[str, str] = {}
    for line in (text or "").splitlines():
        match = re.match(r"^([\w.-]+) \(([^,)]+)", line.strip())
        if match:
            plugins[match.group(1)] = match.group(2)
    return plugins


def providers_from(
    plugins: Mapping[str, str],
    virtualbox: str | None,
    virsh: str | None,
    vmrun: str | None,
    prlctl: str | None,
) -> list[Provider]:
    """Which providers exist, from the plugin list and each hypervisor's own tool."""
    found: list[Provider] = []
    if virtualbox is not None:
        found.append(Provider("virtualbox", virtualbox))
    plugin_tools = {
        "libvirt": (virsh, "virsh"),
        "vmware_desktop": (vmrun, "vmrun"),
        "parallels": (prlctl, "prlctl"),
    }
    for name, (tool_version, tool) in plugin_tools.items():
        plugin = PROVIDER_PLUGINS[name]
        if plugin in plugins and tool_version is None:
            found.append(
                Provider(
                    name,
                    f"{plugin} {plugins[plugin]}",
                    f"{plugin} is installed but {tool} is missing: {HYPERVISOR_INSTALL[name]}",
                )
            )
        elif plugin in plugins:
            found.append(Provider(name, f"{plugin} {plugins[plugin]}, {tool} {tool_version}"))
        elif tool_version is not None:
            found.append(Provider(name, f"{tool} {tool_version}", f"run `vagrant plugin install {plugin}`"))
    return found


@dataclass(frozen=True)
class HostFacts:
    system: str
    cpus: int | None
    memory_mb: int | None
    memory_kind: str
    disk_free_gb: float | None
    disk_where: str
    cpu_flags: frozenset[str] | None
    hv_support: str | None
    kvm_device: bool | None
    vagrant: str | None
    providers: list[Provider] = field(default_factory=list)
    vbox_networks_conf: str | None = None
    #: amd64 / arm64 (the names Vagrant boxes use), None when it is neither.
    arch: str | None = None


def _cpu_flags() -> frozenset[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return frozenset(flags)


def _memory(system: str) -> tuple[int | None, str]:
    if system == "Linux":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024, "available"
        except (OSError, ValueError):
            return None, "available"
    if system == "Darwin":
        total = run_text(["sysctl", "-n", "hw.memsize"])
        if total and total.isdigit():
            return int(total) // (1024 * 1024), "total"
    return None, "available"


def _disk_free_gb(where: Path) -> float | None:
    try:
        return shutil.disk_usage(where).free / 1e9
    except OSError:
        return None


def _version(argv: list[str]) -> str | None:
    text = run_text(argv)
    return text.splitlines()[0].strip() if text else None


def vagrant_version(root: Path) -> str | None:
    text = _version(["vagrant", "--version"]) if tool_path("vagrant", root) else None
    return text.removeprefix("Vagrant ").strip() if text else None


def gather_providers(root: Path, vagrant: str | None) -> list[Provider]:
    """The Vagrant providers of this host (plugins from `vagrant plugin list`, hypervisor tools)."""
    plugins = parse_plugins(run_text(["vagrant", "plugin", "list"])) if vagrant else {}
    return providers_from(
        plugins,
        virtualbox=_version(["VBoxManage", "--version"]) if shutil.which("VBoxManage") else None,
        virsh=_version(["virsh", "--version"]) if shutil.which("virsh") else None,
        vmrun=("present" if shutil.which("vmrun") else None),
        prlctl=_version(["prlctl", "--version"]) if shutil.which("prlctl") else None,
    )


def gather_host(root: Path) -> HostFacts:
    """Facts for the lab checks (Vagrant, providers, virtualisation, resources)."""
    system = platform.system()
    vagrant = vagrant_version(root)
    memory_mb, memory_kind = _memory(system)
    disk_where = Path(os.environ.get("VAGRANT_HOME", Path.home()))
    conf = VBOX_NETWORKS_CONF.read_text() if VBOX_NETWORKS_CONF.is_file() else None
    return HostFacts(
        system=system,
        cpus=os.cpu_count(),
        memory_mb=memory_mb,
        memory_kind=memory_kind,
        disk_free_gb=_disk_free_gb(disk_where if disk_where.exists() else Path.home()),
        disk_where=str(disk_where),
        cpu_flags=_cpu_flags() if system == "Linux" else None,
        hv_support=run_text(["sysctl", "-n", "kern.hv_support"]) if system == "Darwin" else None,
        kvm_device=Path("/dev/kvm").exists() if system == "Linux" else None,
        vagrant=vagrant,
        providers=gather_providers(root, vagrant),
        vbox_networks_conf=conf,
        arch=host_arch(),
    )


@dataclass(frozen=True)
class ToolFacts:
    name: str
    path: str | None
    version: str | None


def bombardier_facts(root: Path) -> ToolFacts:
    """bombardier built from source says "version unspecified": then read setup.sh's stamp."""
    path = tool_path("bombardier", root)
    version = _version([path, "--version"]) if path else None
    if path and (version is None or "unspecified" in version):
        stamp = Path(path).parent / ".bombardier.version"
        version = stamp.read_text().strip() if stamp.is_file() else version
    return ToolFacts("bombardier", path, version)


def prometheus_facts(root: Path) -> ToolFacts:
    path = tool_path("prometheus", root)
    text = _version([path, "--version"]) if path else None
    return ToolFacts("prometheus", path, text.split("(")[0].strip() if text else None)


def ansible_facts(root: Path) -> ToolFacts:
    path = tool_path("ansible-playbook", root)
    text = _version([path, "--version"]) if path else None
    return ToolFacts("ansible-playbook", path, text)


def ports_in_use(ports: Mapping[str, int]) -> set[int]:
    return {port for port in ports.values() if port_in_use(port)}
