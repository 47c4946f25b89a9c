"""The checks of a lab with container nodes (``nodes: containers``): pure, from facts.py's facts.

The nodes are privileged, rootful podman containers running systemd, started by Vagrant's
docker provider through podman-docker's ``docker`` shim, on this host's kernel.  So the
host needs Linux, root, podman with runc, the shim, the kernel features Kubernetes and
flannel use (cgroups, bridge netfilter, overlayfs, vxlan), the memory the nodes measured,
and the offline bundle (the nodes have no route out).  VT-x, a box and a VM provider are
not needed, and are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable

from canarylab.doctor.checks import HOST_RESERVE_MB, _unknown_fix, parse_version
from canarylab.doctor.facts import (
    ABSENT,
    BUILT_IN,
    DOCKER_SHIM,
    LOADABLE,
    LOADED,
    BundleFacts,
    ContainerFacts,
    DockerFacts,
)
from canarylab.doctor.labsize import LabSize, SizeUnknown
from canarylab.doctor.model import FAIL, OK, WARN, Check

#: Tested with Debian 12's podman; older ones are not known to work.
PODMAN_MIN = (4, 3, 0)
#: Peak working set of a node while provisioning and at rest, measured on container nodes
#: (canarylab up records it: node_memory_peak_mb in results/provision-*.json).
CONTROLLER_MB = 2700
WORKER_MB = 1900
USE_VMS = "use VM nodes instead: `nodes: vms` in lab.yml (or CANARYLAB_NODES=vms)"
SETUP = "run `make setup` (Debian: apt install podman podman-docker runc)"


def check_linux(system: str) -> Check:
    if system == "Linux":
        return Check("linux", OK, "Linux: the nodes share this kernel")
    return Check(
        "linux",
        FAIL,
        f"container nodes share the host's Linux kernel; this host runs {system}",
        f"on macOS and Windows {USE_VMS}",
    )


def check_root(euid: int | None) -> Check:
    if euid == 0:
        return Check("root", OK, "running as root (the nodes are privileged rootful containers)")
    return Check(
        "root",
        FAIL,
        f"running as uid {euid if euid is not None else 'unknown'}: the nodes are privileged rootful "
        "podman containers",
        "run canarylab as root (e.g. `sudo -i`, then `. scripts/env.sh`)",
    )


def check_podman(version: str | None) -> Check:
    if version is None:
        return Check("podman", FAIL, "podman is not installed", SETUP)
    parsed = parse_version(version)
    if parsed is None or parsed < PODMAN_MIN:
        return Check(
            "podman",
            WARN,
            f"{version}: older than {'.'.join(map(str, PODMAN_MIN))} (Debian 12's), with which the nodes are "
            "tested",
            "upgrade podman (Debian 12 or newer has it)",
        )
    return Check("podman", OK, version)


def check_runc(runc: str | None, runtime: str | None, containers_conf: str | None) -> Check:
    """runc, and podman set to use it: crun refuses the hybrid cgroup layout some hosts have."""
    if runc is None:
        return Check("runc", FAIL, "runc is not installed (crun refuses some cgroup layouts)", SETUP)
    if runtime is not None and runtime.strip() != "runc":
        conf = containers_conf or "unset"
        return Check(
            "runc",
            WARN,
            f"{runc} is there, but podman runs {runtime.strip()} (CONTAINERS_CONF: {conf})",
            "`. scripts/env.sh`: it sets CONTAINERS_CONF=containers/containers.conf, whose runtime is runc",
        )
    shown = f", podman's runtime: {runtime.strip()}" if runtime else ", podman's runtime: unknown"
    return Check("runc", OK, f"{runc}{shown}")


def check_docker_shim(docker: DockerFacts) -> Check:
    """Vagrant's docker provider runs `docker`: it must be podman-docker's shim.

    The Vagrantfile puts ``.cache/bin`` first on Vagrant's PATH, and scripts/setup.sh links
    the shim there; a shell whose first `docker` is another client does not reach the nodes.
    """
    name = "docker-shim"
    if docker.shim is None:
        return Check(name, FAIL, f"no {DOCKER_SHIM}: podman-docker is not installed", SETUP)
    if not docker.shim_is_podman:
        return Check(
            name,
            FAIL,
            f"{DOCKER_SHIM} is not podman-docker's shim (Docker's own CLI?): "
            "it would look for a Docker daemon",
            "remove Docker's CLI package and install podman-docker (Debian: apt install podman-docker)",
        )
    if docker.link_target != docker.shim_target:
        found = f"leads to {docker.link_target}" if docker.link_target else "is missing"
        return Check(
            name,
            FAIL,
            f"{docker.link} {found}: the Vagrantfile runs the docker there",
            f"run `make setup` (scripts/setup.sh links {DOCKER_SHIM} there)",
        )
    if docker.first_target != docker.shim_target:
        first = docker.first_on_path or "none"
        return Check(
            name,
            WARN,
            f"Vagrant gets {DOCKER_SHIM} (through {docker.link}), but the first docker on your PATH is "
            f"{first}: `docker` in this shell does not show the nodes",
            f"`. scripts/env.sh` (it puts .cache/bin first on PATH), or remove {first} from PATH; "
            "`podman ps` always shows them",
        )
    return Check(name, OK, f"{docker.first_on_path} -> {DOCKER_SHIM} (podman-docker), first on PATH")


def check_cgroup(layout: str | None) -> Check:
    shown = {
        "v2": "cgroup v2 (unified)",
        "hybrid": "cgroup v1 with the v2 unified hierarchy (hybrid: runc copes, crun does not)",
        "v1": "cgroup v1",
    }
    if layout is None:
        return Check(
            "cgroup", FAIL, "/sys/fs/cgroup is not mounted: systemd and kubelet in the nodes need it", USE_VMS
        )
    return Check("cgroup", OK, shown.get(layout, layout))


def _module_fix(module: str, state: str | None) -> str:
    if state == ABSENT:
        return f"this kernel has no {module}: use a kernel with it, or {USE_VMS}"
    return f"sudo modprobe {module} (and name it in /etc/modules-load.d/ to keep it after a reboot)"


def check_bridge_netfilter(bridge_nf: bool, state: str | None) -> Check:
    """kube-proxy and flannel need bridged traffic through iptables (bridge-nf-call-iptables)."""
    name = "br_netfilter"
    if bridge_nf:
        return Check(name, OK, "/proc/sys/net/bridge is there (br_netfilter is in the kernel)")
    known = {LOADABLE: "a module to load", ABSENT: "not in this kernel"}.get(state or "", "unknown")
    return Check(
        name,
        FAIL,
        f"no /proc/sys/net/bridge: br_netfilter is not loaded (module: {known}); the nodes cannot load it",
        _module_fix("br_netfilter", state),
    )


def check_overlay(filesystems: frozenset[str] | None, state: str | None) -> Check:
    """containerd's overlayfs snapshotter in the nodes (and podman's storage)."""
    if filesystems is None:
        return Check("overlay", WARN, "cannot read /proc/filesystems", None)
    if "overlay" in filesystems:
        return Check("overlay", OK, "overlay in /proc/filesystems")
    return Check("overlay", FAIL, "overlay is not in /proc/filesystems", _module_fix("overlay", state))


def check_vxlan(state: str | None, kernel: str) -> Check:
    """flannel's backend; the module loads on demand when flannel creates flannel.1."""
    if state in (LOADED, BUILT_IN):
        return Check("vxlan", OK, f"vxlan {state}")
    if state == LOADABLE:
        return Check("vxlan", OK, "vxlan is a module of this kernel (loaded when flannel creates flannel.1)")
    if state == ABSENT:
        return Check(
            "vxlan", FAIL, f"kernel {kernel} has no vxlan (flannel's backend)", _module_fix("vxlan", ABSENT)
        )
    return Check(
        "vxlan",
        WARN,
        f"cannot check: vxlan is not loaded (/sys/module/vxlan) and there is no /lib/modules/{kernel} "
        "to look in",
        "nothing to do if the kernel loads vxlan on demand (most do); else `sudo modprobe vxlan`",
    )


def container_memory_mb(lab: LabSize) -> int:
    return lab.controllers * CONTROLLER_MB + lab.workers * WORKER_MB


def _nodes_shown(lab: LabSize) -> str:
    workers = f"{lab.workers} worker{'s' if lab.workers != 1 else ''}"
    return (
        f"{lab.controllers} controller x {CONTROLLER_MB} MB + {workers} x {WORKER_MB} MB, "
        "measured on container nodes"
    )


def check_container_memory(
    lab: LabSize | SizeUnknown, available_mb: int | None, kind: str = "available"
) -> Check:
    if isinstance(lab, SizeUnknown):
        host = f"{available_mb} MB {kind}" if available_mb is not None else "cannot read the host's memory"
        return Check(
            "memory",
            WARN,
            f"{host}; the number of nodes is unknown: {lab.message}",
            _unknown_fix(lab.unknown),
        )
    need = container_memory_mb(lab)
    if available_mb is None:
        return Check("memory", WARN, f"cannot read the host's memory; the nodes need about {need} MB", None)
    fix = "close memory-hungry programs, or fewer workers: `workers: 1` in lab.yml (or CANARYLAB_WORKERS=1)"
    text = f"{available_mb} MB {kind}, the nodes need about {need} MB ({_nodes_shown(lab)})"
    if available_mb < need:
        return Check("memory", FAIL, text, fix)
    if available_mb < need + HOST_RESERVE_MB:
        return Check("memory", WARN, f"{text}; less than {HOST_RESERVE_MB} MB left for the host", fix)
    return Check("memory", OK, text)


def _listed(names: Iterable[str], most: int = 5) -> str:
    shown = list(names)
    return ", ".join(shown[:most]) + (f" and {len(shown) - most} more" if len(shown) > most else "")


def check_bundle(bundle: BundleFacts) -> Check:
    """The offline bundle the roles install from (cluster_bundle_dir = its directory)."""
    fix = "canarylab bundle build"
    where = bundle.manifest
    if not bundle.exists:
        return Check("bundle", FAIL, f"no {where}: the offline bundle is not built", fix)
    if bundle.error is not None:
        return Check("bundle", FAIL, bundle.error, fix)
    if not bundle.complete:
        missing = _listed(bundle.missing) or "unnamed items"
        return Check("bundle", FAIL, f"{where} is incomplete: {missing} not built", fix)
    if bundle.absent:
        return Check(
            "bundle", FAIL, f"{where} lists files that are gone or changed: {_listed(bundle.absent)}", fix
        )
    return Check("bundle", OK, f"{where}: complete, {bundle.items} items")


def container_node_checks(
    facts: ContainerFacts, lab: LabSize | SizeUnknown, memory_mb: int | None
) -> list[Check]:
    """Every check the container nodes need; on anything but Linux only that one (the rest
    is about a Linux kernel)."""
    linux = check_linux(facts.system)
    if linux.status != OK:
        return [linux]
    return [
        linux,
        check_root(facts.euid),
        check_podman(facts.podman),
        check_runc(facts.runc, facts.runtime, facts.containers_conf),
        check_docker_shim(facts.docker),
        check_cgroup(facts.cgroup),
        check_bridge_netfilter(facts.bridge_nf, facts.modules.get("br_netfilter")),
        check_overlay(facts.filesystems, facts.modules.get("overlay")),
        check_vxlan(facts.modules.get("vxlan"), facts.kernel),
        check_container_memory(lab, memory_mb),
        check_bundle(facts.bundle),
    ]
