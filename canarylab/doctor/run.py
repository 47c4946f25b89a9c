"""Which checks run for which target, fed from the gathered facts.

For the lab, the Vagrantfile is asked once (:func:`vagrant_config`): its answer gives the
box check its box and the provider, memory, CPU and disk checks the lab's size
(:func:`canarylab.doctor.labsize.lab_size`), and says which kind of node the lab has
(``nodes``).  VMs get those checks; container nodes get theirs (containers.py) instead of
the box, provider, virtualisation, CPU, disk and VirtualBox ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from canarylab.doctor import checks, facts
from canarylab.doctor.box import PinnedBox, VagrantConfig, load_pins, vagrant_config
from canarylab.doctor.containers import container_node_checks
from canarylab.doctor.labsize import CONTAINERS, LabSize, lab_nodes, lab_size
from canarylab.doctor.model import Check
from canarylab.experiment.targets.base import TargetKind
from canarylab_contract import LOCAL_PORTS

VERSIONS_FILE = Path("inventory/group_vars/all/versions.yml")
#: Environment variables that configure the lab (the Vagrantfile reads them).
LAB_SETTINGS = ("CANARYLAB_", "VAGRANT_DEFAULT_PROVIDER")


def local_ports() -> dict[str, int]:
    """LOCAL_PORTS flattened: {"model_service stable": 18081, ..., "prometheus": 19090}."""
    flat: dict[str, int] = {}
    for name, value in LOCAL_PORTS.items():
        if isinstance(value, Mapping):
            flat.update({f"{name} {variant}": int(str(port)) for variant, port in value.items()})
        else:
            flat[name] = int(str(value))
    return flat


def pinned(root: Path, key: str) -> str | None:
    try:
        pins = yaml.safe_load((root / VERSIONS_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    value = pins.get(key) if isinstance(pins, dict) else None
    return str(value) if value is not None else None


def lab_checks(
    host: facts.HostFacts,
    config: VagrantConfig,
    pins: Mapping[str, PinnedBox],
) -> list[Check]:
    """The lab's checks.

    ``config`` is the Vagrantfile's answer, asked once: the box check and the size checks
    (provider, memory, CPUs, disk) all read it.  ``pins`` are versions.yml's boxes.
    """
    lab = lab_size(config)
    result = [
        checks.check_vagrant(host.vagrant),
        *([checks.check_nodes(config)] if config.values is not None else []),
        checks.check_lab_provider(host.providers, lab),
        checks.check_box(config, pins, host.arch),
        checks.check_virtualisation(host.system, host.cpu_flags, host.hv_support, host.kvm_device),
        checks.check_memory(lab, host.memory_mb, host.memory_kind),
        checks.check_cpus(lab, host.cpus),
        checks.check_disk(lab, host.disk_free_gb, host.disk_where),
    ]
    vbox = next((p for p in host.providers if p.name == "virtualbox"), None)
    if vbox is not None:
        result.append(checks.check_virtualbox_version(vbox.version))
    provider = lab.provider if isinstance(lab, LabSize) else None
    if (vbox is not None or provider == "virtualbox") and host.system != "Windows":
        result.append(checks.check_vbox_networks(host.vbox_networks_conf))
    return result


def container_lab_checks(
    host: facts.HostFacts, config: VagrantConfig, nodes: facts.ContainerFacts
) -> list[Check]:
    """The checks of a lab whose nodes are containers (the Vagrantfile's ``nodes``)."""
    return [
        checks.check_vagrant(host.vagrant),  # its docker provider starts the nodes
        checks.check_nodes(config),
        *container_node_checks(nodes, lab_size(config), host.memory_mb),
    ]


def local_checks(root: Path, in_use: set[int]) -> list[Check]:
    setup = "run `scripts/setup.sh --minimal` (or `make setup`), then `. scripts/env.sh`"
    bombardier = facts.bombardier_facts(root)
    prometheus = facts.prometheus_facts(root)
    return [
        checks.check_ports(local_ports(), in_use),
        checks.check_tool(
            "bombardier",
            bombardier.path,
            bombardier.version,
            setup,
            pinned=pinned(root, "bombardier_version"),
        ),
        checks.check_tool(
            "prometheus",
            prometheus.path,
            prometheus.version,
            # setup.sh unpacks Debian's prometheus package into the user cache and links it
            # into .cache/bin; installing the package would start a system daemon on :9090.
            "run `make setup-minimal` (or `scripts/setup.sh --minimal`) and `. scripts/env.sh`; "
            "elsewhere put prometheus on PATH",
        ),
    ]


def common_checks(root: Path) -> list[Check]:
    ansible = facts.ansible_facts(root)
    return [
        checks.check_tool(
            "ansible", ansible.path, ansible.version, "run `make setup`, then `. scripts/env.sh`"
        )
    ]


def lab_environment(environ: Mapping[str, str] | None) -> dict[str, str]:
    """The environment the lab is read with: this process's, or its non-lab part plus ``environ``.

    ``environ`` stands for the lab's settings (CANARYLAB_*, VAGRANT_DEFAULT_PROVIDER) alone,
    so ``{}`` means "none set"; PATH, HOME etc. are still this process's, for vagrant.
    """
    if environ is None:
        return dict(os.environ)
    ours = {k: v for k, v in os.environ.items() if not k.startswith(LAB_SETTINGS)}
    return {**ours, **environ}


def run_doctor(root: Path, target: TargetKind, environ: Mapping[str, str] | None = None) -> list[Check]:
    """Gather this host's facts and run the checks of ``target`` ("lab" or "local")."""
    result = common_checks(root)
    if target == "lab":
        env = lab_environment(environ)
        config = vagrant_config(root, env)
        host = facts.gather_host(root)
        if lab_nodes(config) == CONTAINERS:
            result += container_lab_checks(host, config, facts.gather_containers(root, env))
        else:
            result += lab_checks(host, config, load_pins(root))
    else:
        result += local_checks(root, facts.ports_in_use(local_ports()))
    return result
