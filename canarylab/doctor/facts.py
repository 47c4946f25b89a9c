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

from canarylab.bundle.manifest import MANIFEST
from canarylab.bundle.manifest import load as load_manifest
from canarylab.doctor.box import host_arch
from canarylab.doctor.checks import Provider
from canarylab.errors import CanarylabError
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


def run_text(argv: list[str], timeout: float = 20.0, env: Mapping[str, str] | None = None) -> str | None:
    """stdout+stderr of a command, or None when it is missing, fails or hangs."""
    try:
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
        )
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


# --- container nodes (nodes: containers) ------------------------------------------------

#: podman-docker's shim: a shell script that runs podman (Vagrant's docker provider runs `docker`).
DOCKER_SHIM = Path("/usr/bin/docker")
#: Kernel modules the nodes need from the host (they share its kernel and cannot load any).
NODE_MODULES = ("br_netfilter", "overlay", "vxlan")
#: module_state(): in the running kernel, built in, a module file there to load, not there.
LOADED, BUILT_IN, LOADABLE, ABSENT = "loaded", "built-in", "loadable", "absent"


@dataclass(frozen=True)
class DockerFacts:
    """Which `docker` Vagrant's docker provider will run, and which one a shell runs."""

    #: DOCKER_SHIM's path when it exists, and where it leads (realpath)
    shim: str | None
    shim_target: str | None
    #: DOCKER_SHIM is a small script that runs podman (podman-docker), not Docker's own CLI
    shim_is_podman: bool
    #: <project>/.cache/bin/docker (scripts/setup.sh's link; the Vagrantfile puts .cache/bin first)
    link: str
    #: where that link leads (realpath), None when there is no such file
    link_target: str | None
    #: the first `docker` on the user's PATH and its realpath (None: there is none)
    first_on_path: str | None
    first_target: str | None


@dataclass(frozen=True)
class BundleFacts:
    """``$CANARYLAB_CACHE/bundle/manifest.json`` as the roles will read it."""

    manifest: str
    exists: bool
    #: why the manifest cannot be read (not JSON, another schema), None when it can
    error: str | None = None
    complete: bool = False
    #: items the last build could not make (the manifest's ``missing``)
    missing: tuple[str, ...] = ()
    #: files the manifest lists that are gone or have another size
    absent: tuple[str, ...] = ()
    items: int = 0


@dataclass(frozen=True)
class ContainerFacts:
    """Facts for the container nodes' checks (privileged rootful podman containers)."""

    system: str
    #: effective uid, None where there is none (Windows)
    euid: int | None
    #: ``podman --version`` (``podman version 4.3.1``), None when podman is missing
    podman: str | None
    runc: str | None
    #: podman's OCI runtime (``podman info``: runc / crun), None when podman cannot say
    runtime: str | None
    #: CONTAINERS_CONF as the doctor sees it (scripts/env.sh points it at containers/containers.conf)
    containers_conf: str | None
    docker: DockerFacts
    #: "v2", "hybrid" (v1 with the unified v2 hierarchy), "v1"; None: /sys/fs/cgroup is not mounted
    cgroup: str | None
    #: /proc/sys/net/bridge exists (br_netfilter is in the kernel)
    bridge_nf: bool
    #: /proc/filesystems' names; None when it cannot be read
    filesystems: frozenset[str] | None
    kernel: str
    #: NODE_MODULES -> LOADED / BUILT_IN / LOADABLE / ABSENT, None: cannot tell (no /lib/modules/<kernel>)
    modules: Mapping[str, str | None]
    bundle: BundleFacts


def cgroup_layout(root: Path = Path("/sys/fs/cgroup")) -> str | None:
    if (root / "cgroup.controllers").is_file():
        return "v2"
    if (root / "unified").is_dir() and (root / "memory").is_dir():
        return "hybrid"
    if (root / "memory").is_dir():
        return "v1"
    return None


def module_state(
    name: str, kernel: str, sys_module: Path = Path("/sys/module"), lib_modules: Path = Path("/lib/modules")
) -> str | None:
    """Is kernel module ``name`` there?  /sys/module first (no /proc/modules in every host),
    then modules.builtin and modules.dep of /lib/modules/<kernel>; None when neither can say."""
    if (sys_module / name).is_dir():
        return LOADED
    base = lib_modules / kernel
    builtin, dep = base / "modules.builtin", base / "modules.dep"
    if not builtin.is_file() and not dep.is_file():
        return None

    def names(path: Path) -> set[str]:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return set()
        return {Path(line.split(":", 1)[0]).name.split(".ko", 1)[0].replace("-", "_") for line in lines}

    if name in names(builtin):
        return BUILT_IN
    if name in names(dep):
        return LOADABLE
    return ABSENT if builtin.is_file() and dep.is_file() else None


def _is_podman_shim(path: Path) -> bool:
    """podman-docker's /usr/bin/docker: a few lines of shell that exec podman (Docker's CLI is a
    40 MB binary)."""
    try:
        if path.stat().st_size > 64 * 1024:
            return False
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    return head.startswith(b"#!") and b"podman" in head


def _target(path: Path) -> str | None:
    return os.path.realpath(path) if path.exists() else None


def docker_facts(root: Path, path_env: str, shim: Path = DOCKER_SHIM) -> DockerFacts:
    link = root / ".cache" / "bin" / "docker"
    first = shutil.which("docker", path=path_env)
    return DockerFacts(
        shim=str(shim) if shim.exists() else None,
        shim_target=_target(shim),
        shim_is_podman=_is_podman_shim(shim),
        link=str(link),
        link_target=_target(link),
        first_on_path=first,
        first_target=_target(Path(first)) if first else None,
    )


def bundle_dir(environ: Mapping[str, str]) -> Path:
    """``$CANARYLAB_CACHE/bundle`` with CANARYLAB_CACHE defaulting as in scripts/env.sh (and
    canarylab.bundle.cache.bundle_root), read from ``environ``: the lab's environment."""
    cache = environ.get("CANARYLAB_CACHE")
    if not cache:
        xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = str(Path(xdg) / "canarylab")
    return Path(cache) / "bundle"


def bundle_facts(directory: Path) -> BundleFacts:
    """Read the manifest (canarylab.bundle.manifest.load); files are checked for presence and
    size only: re-hashing gigabytes is `canarylab bundle verify`'s job, not the doctor's."""
    path = directory / MANIFEST
    if not path.is_file():
        return BundleFacts(str(path), exists=False)
    try:
        data = load_manifest(path)
    except CanarylabError as err:
        return BundleFacts(str(path), exists=True, error=err.message)
    items = [i for i in data.get("items") or [] if isinstance(i, Mapping)]
    absent: list[str] = []
    for item in items:
        for entry in item.get("files") or []:
            rel = str(entry.get("path") or "") if isinstance(entry, Mapping) else ""
            try:
                size = (directory / rel).stat().st_size if rel else -1
            except OSError:
                size = -1
            if size < 0 or size != entry.get("size", size):
                absent.append(rel or "?")
    return BundleFacts(
        str(path),
        exists=True,
        complete=bool(data.get("complete")),
        missing=tuple(str(m) for m in data.get("missing") or []),
        absent=tuple(absent),
        items=len(items),
    )


def gather_containers(root: Path, environ: Mapping[str, str]) -> ContainerFacts:
    """Facts for the container nodes' checks, on this host, with the lab's environment."""
    system = platform.system()
    path_env = environ.get("PATH", os.defpath)
    podman = shutil.which("podman", path=path_env)
    kernel = platform.release()
    filesystems: frozenset[str] | None
    try:
        filesystems = frozenset(
            line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines() if line.split()
        )
    except OSError:
        filesystems = None
    geteuid = getattr(os, "geteuid", None)
    return ContainerFacts(
        system=system,
        euid=geteuid() if geteuid is not None else None,
        podman=_version([podman, "--version"]) if podman else None,
        runc=shutil.which("runc", path=path_env),
        runtime=(
            run_text([podman, "info", "--format", "{{.Host.OCIRuntime.Name}}"], env=environ)
            if podman
            else None
        ),
        containers_conf=environ.get("CONTAINERS_CONF"),
        docker=docker_facts(root, path_env),
        cgroup=cgroup_layout() if system == "Linux" else None,
        bridge_nf=Path("/proc/sys/net/bridge").is_dir(),
        filesystems=filesystems,
        kernel=kernel,
        modules={name: module_state(name, kernel) for name in NODE_MODULES},
        bundle=bundle_facts(bundle_dir(environ)),
    )
