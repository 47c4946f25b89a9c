"""The doctor's checks: small pure functions from gathered facts to a ``Check``.

Each one takes its inputs as arguments (see facts.py for how they are gathered
on this host), so the branches that cannot happen on the test machine (no
Vagrant, old VirtualBox, macOS, no VT-x, low RAM) are tested with fixture inputs.

The lab's size and provider (``provider``, ``memory``, ``cpus``, ``disk``) and its box
(``box``) are the Vagrantfile's own answer (box.py, labsize.py), asked once per run;
when that answer is missing the checks say the size or box is unknown, why, and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from canarylab.doctor.box import NO_VAGRANT, TIMEOUT, PinnedBox, VagrantConfig
from canarylab.doctor.labsize import CONTAINERS, NODE_KINDS, LabSize, SizeUnknown, lab_nodes
from canarylab.doctor.model import FAIL, OK, WARN, Check

VAGRANT_MIN = (2, 3, 0)
VIRTUALBOX_MIN = (6, 1, 28)
#: VirtualBox >= 6.1.28 only allows host-only networks listed in networks.conf.
VBOX_REQUIRED_RANGE = ipaddress.ip_network("192.168.56.0/21")
#: Memory left for the host itself on top of the VMs.
HOST_RESERVE_MB = 2048
#: Disk each VM grows to: the Debian box, kubeadm/Istio/monitoring images, logs.
DISK_PER_VM_GB = 10
VAGRANT_INSTALL = (
    "install Vagrant: https://developer.hashicorp.com/vagrant/install (Debian: apt install vagrant)"
)
PROVIDER_INSTALL = (
    "install a provider: VirtualBox >= 6.1.28 (https://www.virtualbox.org/wiki/Downloads), "
    "or libvirt + the plugin (Debian: apt install libvirt-daemon-system vagrant-libvirt)"
)


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """The first dotted number in ``text`` (``7.0.14r161095`` -> (7, 0, 14))."""
    match = re.search(r"(\d+(?:\.\d+)+)", text or "")
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True)
class Provider:
    """A Vagrant provider found on the host; ``problem`` says why it cannot be used yet."""

    name: str
    version: str | None
    problem: str | None = None


def check_vagrant(version: str | None) -> Check:
    if version is None:
        return Check("vagrant", FAIL, "vagrant is not installed", VAGRANT_INSTALL)
    parsed = parse_version(version)
    if parsed is None or parsed < VAGRANT_MIN:
        return Check(
            "vagrant", WARN, f"Vagrant {version} is older than {_dotted(VAGRANT_MIN)}", VAGRANT_INSTALL
        )
    return Check("vagrant", OK, f"Vagrant {_dotted(parsed)}")


def check_providers(providers: Iterable[Provider], wanted: str | None = None) -> Check:
    """Is the lab's provider (lab.yml / CANARYLAB_PROVIDER) usable?  Any provider when ``wanted`` is None."""
    found = list(providers)
    usable = [p.name for p in found if p.problem is None]
    listed = ", ".join(f"{p.name} {p.version or '?'}" + (" (not usable)" if p.problem else "") for p in found)
    fixes = "; ".join(p.problem for p in found if p.problem and (wanted is None or p.name == wanted))
    if wanted is None and usable:
        return Check("provider", OK, f"usable: {listed}")
    if wanted is not None and wanted in usable:
        return Check("provider", OK, f"{wanted} (the lab's provider) is usable; found: {listed}")
    if wanted is not None and usable:
        return Check(
            "provider",
            FAIL,
            f"the lab's provider {wanted} is not usable; usable: {', '.join(usable)}",
            f"set `provider: {usable[0]}` in lab.yml (or CANARYLAB_PROVIDER={usable[0]})"
            + (f", or {fixes}" if fixes else f", or install {wanted}"),
        )
    what = f"the lab's provider {wanted} is not usable" if wanted else "no usable Vagrant provider"
    if found:
        return Check("provider", FAIL, f"{what}; found: {listed}", fixes or PROVIDER_INSTALL)
    return Check(
        "provider",
        FAIL,
        f"{what}; found none of virtualbox, libvirt, vmware_desktop, parallels",
        PROVIDER_INSTALL,
    )


def check_lab_provider(providers: Iterable[Provider], lab: LabSize | SizeUnknown) -> Check:
    """Is the provider the Vagrantfile resolved usable?  Unknown: which ones are, and why unknown."""
    if isinstance(lab, LabSize):
        return check_providers(providers, lab.provider)
    found = check_providers(providers)
    if found.status != OK:
        return found
    return Check(
        "provider",
        WARN,
        f"the lab's provider is unknown ({lab.message}); {found.detail}",
        _unknown_fix(lab.unknown),
    )


def check_virtualbox_version(version: str | None) -> Check:
    parsed = parse_version(version)
    if parsed is None:
        return Check("virtualbox", WARN, f"cannot read the VirtualBox version from {version!r}", None)
    if parsed < VIRTUALBOX_MIN:
        return Check(
            "virtualbox",
            FAIL,
            f"VirtualBox {_dotted(parsed)} is older than {_dotted(VIRTUALBOX_MIN)}",
            "upgrade VirtualBox: https://www.virtualbox.org/wiki/Downloads",
        )
    return Check("virtualbox", OK, f"VirtualBox {_dotted(parsed)}")


def allowed_networks(conf: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The ranges a VirtualBox networks.conf allows (lines ``* 10.0.0.0/8 192.168.0.0/16``)."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in conf.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "*":
            continue
        for word in words[1:]:
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    return nets


def check_vbox_networks(conf: str | None, path: str = "/etc/vbox/networks.conf") -> Check:
    want = VBOX_REQUIRED_RANGE
    fix = f"add the line `* {want}` to {path} (sudo), then re-run `canarylab up`"
    if conf is None:
        return Check("vbox-networks", OK, f"no {path}: VirtualBox allows {want} by default")
    for net in allowed_networks(conf):
        if net.version == want.version and want.subnet_of(net):  # type: ignore[arg-type]
            return Check("vbox-networks", OK, f"{path} allows {want} (through {net})")
    return Check("vbox-networks", FAIL, f"{path} does not allow the lab's host-only range {want}", fix)


def _linux_virtualisation(name: str, cpu_flags: frozenset[str] | None, kvm_device: bool | None) -> Check:
    if cpu_flags is None:
        return Check(name, WARN, "cannot read /proc/cpuinfo", "check that VT-x/AMD-V is enabled in firmware")
    flag = "vmx" if "vmx" in cpu_flags else "svm" if "svm" in cpu_flags else None
    if flag is None:
        return Check(
            name,
            FAIL,
            "the CPU shows no vmx/svm flag: hardware virtualisation is off or hidden",
            "enable VT-x/AMD-V in the BIOS/UEFI; inside a VM, enable nested virtualisation",
        )
    if kvm_device is False:
        return Check(
            name,
            WARN,
            f"CPU flag {flag} present but /dev/kvm is missing (needed by libvirt)",
            "load the module: sudo modprobe kvm_intel (or kvm_amd)",
        )
    return Check(name, OK, f"CPU flag {flag}" + (", /dev/kvm present" if kvm_device else ""))


def _macos_virtualisation(name: str, hv_support: str | None) -> Check:
    value = hv_support.strip() if hv_support else "unknown"
    if value == "1":
        return Check(name, OK, "kern.hv_support = 1")
    return Check(
        name,
        FAIL,
        f"kern.hv_support = {value}: no hypervisor support",
        "this Mac cannot run hardware-virtualised VMs; use a host with VT-x/AMD-V or Apple's Hypervisor",
    )


#: The way out on a Linux host without VT-x/AMD-V: nodes that are containers, not VMs.
CONTAINER_NODES_FIX = (
    "or, without VT-x/AMD-V, run the nodes as containers: `canarylab up --nodes containers` "
    "(or `nodes: containers` in lab.yml; Linux, as root; docs/lab.md)"
)


def check_virtualisation(
    system: str, cpu_flags: frozenset[str] | None, hv_support: str | None, kvm_device: bool | None = None
) -> Check:
    """vmx/svm CPU flags (and /dev/kvm) on Linux, sysctl kern.hv_support on macOS.

    A Linux host that fails is offered the container nodes, which need no hardware
    virtualisation (macOS cannot run them: they share the host's Linux kernel).
    """
    name = "virtualisation"
    if system == "Linux":
        check = _linux_virtualisation(name, cpu_flags, kvm_device)
        if check.status == FAIL:
            return Check(check.name, FAIL, check.detail, f"{check.fix}; {CONTAINER_NODES_FIX}")
        return check
    if system == "Darwin":
        return _macos_virtualisation(name, hv_support)
    return Check(name, WARN, f"cannot check hardware virtualisation on {system}", "check it in your firmware")


def check_nodes(config: VagrantConfig) -> Check:
    """Which kind of node the Vagrantfile resolved (lab.yml ``nodes:``, CANARYLAB_NODES,
    ``canarylab up --nodes``): the checks that follow are that kind's."""
    values = config.values or {}
    nodes = lab_nodes(config)
    if nodes is None:
        return Check(
            "nodes",
            FAIL,
            f"the Vagrantfile says nodes {values.get('nodes')!r}, not one of {', '.join(NODE_KINDS)}",
            "set `nodes: vms` or `nodes: containers` in lab.yml (or CANARYLAB_NODES)",
        )
    if nodes == CONTAINERS:
        return Check(
            "nodes",
            OK,
            "containers: privileged podman containers through Vagrant's docker provider "
            "(no VT-x, box or VM provider needed)",
        )
    said = "" if "nodes" in values else " (the Vagrantfile does not say: VMs)"
    return Check("nodes", OK, f"vms{said}: a provider below runs them")


def _unknown_fix(unknown: str | None) -> str:
    """What to do when the Vagrantfile's answer (box, lab size) is missing, by why it is."""
    if unknown == NO_VAGRANT:
        return "install Vagrant (see the `vagrant` check)"
    if unknown == TIMEOUT:
        return "run `CANARYLAB_CONFIG_JSON=- vagrant validate` in the project to see where it hangs"
    return (
        "fix lab.yml or the CANARYLAB_* variables it names (docs/lab.md, 'Settings'); "
        "`vagrant validate` shows the same message"
    )


def _size_unknown(name: str, lab: SizeUnknown, host: str) -> Check:
    """A size check without the lab's size: the host's side, why the size is unknown, the fix."""
    return Check(name, WARN, f"{host}; the lab's size is unknown: {lab.message}", _unknown_fix(lab.unknown))


def check_memory(lab: LabSize | SizeUnknown, available_mb: int | None, kind: str = "available") -> Check:
    if isinstance(lab, SizeUnknown):
        host = f"{available_mb} MB {kind}" if available_mb is not None else "cannot read the host's memory"
        return _size_unknown("memory", lab, host)
    need = lab.memory_mb
    if available_mb is None:
        return Check("memory", WARN, f"cannot read the host's memory; the lab needs {need} MB", None)
    fix = (
        "close memory-hungry programs, or shrink the lab: CANARYLAB_WORKERS=1 or "
        "CANARYLAB_WORKER_MEMORY=2048 (see docs/cli.md)"
    )
    text = f"{available_mb} MB {kind}, the VMs need {need} MB ({lab.describe()})"
    if available_mb < need:
        return Check("memory", FAIL, text, fix)
    if available_mb < need + HOST_RESERVE_MB:
        return Check("memory", WARN, f"{text}; less than {HOST_RESERVE_MB} MB left for the host", fix)
    return Check("memory", OK, text)


def check_cpus(lab: LabSize | SizeUnknown, host_cpus: int | None) -> Check:
    if isinstance(lab, SizeUnknown):
        host = f"{host_cpus} host CPUs" if host_cpus is not None else "cannot count the host's CPUs"
        return _size_unknown("cpus", lab, host)
    if host_cpus is None:
        return Check("cpus", WARN, "cannot count the host's CPUs", None)
    fix = "lower CANARYLAB_CONTROLLER_CPUS / CANARYLAB_WORKER_CPUS (see docs/cli.md)"
    if lab.largest_vm_cpus > host_cpus:
        return Check("cpus", FAIL, f"a VM wants {lab.largest_vm_cpus} CPUs, the host has {host_cpus}", fix)
    if lab.cpus > host_cpus:
        return Check(
            "cpus",
            WARN,
            f"the VMs want {lab.cpus} vCPUs on {host_cpus} host CPUs: "
            "they will share them (slower, noisier results)",
            fix,
        )
    return Check("cpus", OK, f"{host_cpus} host CPUs for {lab.cpus} vCPUs")


def check_disk(lab: LabSize | SizeUnknown, free_gb: float | None, where: str) -> Check:
    if isinstance(lab, SizeUnknown):
        host = (
            f"{free_gb:.0f} GB free on {where}"
            if free_gb is not None
            else f"cannot read free disk space of {where}"
        )
        return _size_unknown("disk", lab, host)
    need = lab.vms * DISK_PER_VM_GB
    if free_gb is None:
        return Check(
            "disk", WARN, f"cannot read free disk space of {where}; the lab needs about {need} GB", None
        )
    fix = f"free disk space on {where} (old Vagrant boxes: `vagrant box prune`)"
    text = f"{free_gb:.0f} GB free on {where}, the lab needs about {need} GB"
    if free_gb < need:
        return Check("disk", FAIL, text, fix)
    if free_gb < need * 1.5:
        return Check("disk", WARN, f"{text}; little room left", fix)
    return Check("disk", OK, text)


def check_ports(ports: Mapping[str, int], in_use: Iterable[int]) -> Check:
    busy = set(in_use)
    taken = [f"{name} {port}" for name, port in ports.items() if port in busy]
    if taken:
        return Check(
            "ports",
            FAIL,
            "in use on 127.0.0.1: " + ", ".join(taken),
            "stop what listens there (`ss -ltnp` shows it), e.g. a local experiment still running",
        )
    return Check("ports", OK, "free: " + ", ".join(f"{p}" for p in sorted(ports.values())))


def check_tool(
    name: str,
    path: str | None,
    version: str | None,
    fix: str,
    pinned: str | None = None,
) -> Check:
    if path is None:
        return Check(name, FAIL, f"{name} not found on PATH or in .cache/bin", fix)
    shown = version or "unknown version"
    if pinned is not None and (version is None or parse_version(version) != parse_version(pinned)):
        return Check(name, WARN, f"{path}: {shown}, pinned {pinned}", fix)
    return Check(name, OK, f"{path}: {shown}")


def _box_fix(box: str) -> str:
    """Choose ``box`` with no version constraint, in lab.yml or for one command."""
    return (
        f'set `box: {box}` and `box_version: ""` in lab.yml '
        f"(or CANARYLAB_BOX={box} CANARYLAB_BOX_VERSION= for one command)"
    )


#: Where the Vagrantfile says a setting came from (its box_from / version_from).
_FROM = {"environment": "the environment", "lab.yml": "lab.yml", "versions.yml": "versions.yml"}


def _box_shown(box: str, version: str, box_from: str, version_from: str | None) -> str:
    """``bento/ubuntu-24.04 202510.26.0 (pinned in versions.yml)``, or where each part came from."""
    shown = version or "(no version constraint: the newest with a build)"
    boxes, versions = _FROM.get(box_from, box_from), _FROM.get(version_from or "", version_from)
    if box_from == version_from == "versions.yml":
        where = "pinned in versions.yml"
    elif box_from == version_from:
        where = f"from {boxes}"
    elif version_from is None:
        where = f"from {boxes}; no version set (a pinned version is for the pinned box only)"
    else:
        where = f"box from {boxes}, version from {versions}"
    return f"{box} {shown} ({where})"


def _text(values: Mapping[str, object], key: str) -> str:
    value = values.get(key)
    return "" if value is None else str(value)


def _box_unknown(config: VagrantConfig) -> Check:
    """The Vagrantfile's answer is missing: why, and what to do."""
    status = WARN if config.unknown in (NO_VAGRANT, TIMEOUT) else FAIL
    return Check("box", status, f"unknown: {config.message}", _unknown_fix(config.unknown))


def check_box(config: VagrantConfig, pins: Mapping[str, PinnedBox], arch: str | None) -> Check:
    """Is the box ``vagrant up`` will ask for known to have a build for this provider and host?

    ``config`` is the Vagrantfile's own answer (CANARYLAB_CONFIG_JSON), ``pins`` the
    ``vagrant_boxes`` of versions.yml (with the builds known to exist), ``arch`` the host's.
    """
    values = config.values
    if values is None:
        return _box_unknown(config)
    os_name, provider, box, version = (_text(values, k) for k in ("os", "provider", "box", "box_version"))
    box_from, version_from = _text(values, "box_from"), _text(values, "version_from") or None
    where = f"{provider} on {arch or 'an unknown architecture'}"
    wanted = f"{_box_shown(box, version, box_from, version_from)}, {where}"
    pinned = pins.get(os_name)
    if pinned is None:
        return Check(
            "box",
            WARN,
            f"{wanted}: not confirmed, versions.yml (vagrant_boxes) records no builds for os {os_name!r}",
            f"add `vagrant_boxes.{os_name}` with its `builds` to inventory/group_vars/all/versions.yml",
        )
    back = (
        "remove `box`/`box_version` from lab.yml (and unset CANARYLAB_BOX, CANARYLAB_BOX_VERSION) "
        f"to get {pinned.box} {pinned.version}"
    )
    if box != pinned.box or version != pinned.version:
        return Check(
            "box",
            WARN,
            f"{wanted}: not confirmed, canarylab records builds only for {pinned.box} {pinned.version}",
            f"nothing to do if {box} has a {provider} build for {arch or 'this host'} "
            f"(https://portal.cloud.hashicorp.com/vagrant/discover/{box} lists them); else {back}",
        )
    if arch is None:
        return Check("box", WARN, f"{wanted}: cannot tell this host's architecture", None)
    if arch in pinned.builds.get(provider, frozenset()):
        return Check("box", OK, f"{wanted}: bento lists this build")
    others = sorted(p for p, archs in pinned.builds.items() if arch in archs and p != provider)
    fix = f"use a box that has one: {_box_fix(pinned.fallback or '<a box with such a build>')}"
    if others:
        fix += f"; or another provider ({', '.join(others)}: `provider:` in lab.yml)"
    return Check(
        "box",
        WARN,
        f"{wanted}: bento lists no {provider} {arch} build of {pinned.box} {pinned.version}, "
        "so `vagrant up` will not find the box",
        fix,
    )
