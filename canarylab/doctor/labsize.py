"""How big the lab is: the machines the Vagrantfile resolved, as typed facts.

The Vagrantfile is the only place that works out the machines (their number, CPUs and
memory) and the provider from lab.yml and the CANARYLAB_* variables; this module does
not repeat that.  It reads the Vagrantfile's own answer, the ``machines`` and
``provider`` of the JSON it writes under ``CANARYLAB_CONFIG_JSON`` (gathered by
:func:`canarylab.doctor.box.vagrant_config`, once per doctor run), into a
:class:`LabSize`.  Without that answer (Vagrant missing, the Vagrantfile stopped, a
hang) the size is a :class:`SizeUnknown` saying why, and the checks say so instead of
guessing.

The same answer says which kind of node the lab has (``nodes``: ``vms``, or
``containers``, privileged podman containers through Vagrant's docker provider);
an answer without the key is a Vagrantfile from before container nodes: VMs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from canarylab.doctor.box import FAILED, VagrantConfig, vagrant_config
from canarylab.errors import CanarylabError

#: LabSize.source: where the sizes come from.
SOURCE = "the Vagrantfile"
#: The kinds of node (the Vagrantfile's ``nodes``; lab.yml ``nodes:``, CANARYLAB_NODES).
NodeKind = Literal["vms", "containers"]
VMS: NodeKind = "vms"
CONTAINERS: NodeKind = "containers"
NODE_KINDS: tuple[NodeKind, ...] = (VMS, CONTAINERS)


@dataclass(frozen=True)
class VmSize:
    cpus: int
    memory_mb: int


@dataclass(frozen=True)
class Machine:
    """One entry of the Vagrantfile's ``machines``: a VM as ``vagrant up`` builds it."""

    name: str
    group: str
    cpus: int
    memory_mb: int

    @property
    def size(self) -> VmSize:
        return VmSize(self.cpus, self.memory_mb)


@dataclass(frozen=True)
class LabSize:
    """The lab's VMs and provider, as the Vagrantfile resolved them."""

    machines: tuple[Machine, ...]
    provider: str
    source: str = SOURCE
    #: "vms", or "containers" (then ``provider`` is docker, and cpus/memory are not reserved).
    nodes: NodeKind = VMS

    @property
    def vms(self) -> int:
        return len(self.machines)

    @property
    def memory_mb(self) -> int:
        return sum(m.memory_mb for m in self.machines)

    @property
    def cpus(self) -> int:
        return sum(m.cpus for m in self.machines)

    @property
    def largest_vm_cpus(self) -> int:
        return max((m.cpus for m in self.machines), default=0)

    @property
    def workers(self) -> int:
        return sum(1 for m in self.machines if m.group == "workers")

    @property
    def controllers(self) -> int:
        return sum(1 for m in self.machines if m.group == "controller")

    def _first(self, group: str) -> VmSize:
        return next((m.size for m in self.machines if m.group == group), VmSize(0, 0))

    @property
    def controller(self) -> VmSize:
        """The (first) controller's size; 0/0 when there is none."""
        return self._first("controller")

    @property
    def worker(self) -> VmSize:
        """The first worker's size (the Vagrantfile sizes all workers alike); 0/0 when none."""
        return self._first("workers")

    def describe(self) -> str:
        """``1 controller 2 CPU/3072 MB + 2 workers 2 CPU/4096 MB (the Vagrantfile)``."""
        runs: list[tuple[str, VmSize, int]] = []
        for m in self.machines:
            if runs and runs[-1][:2] == (m.group, m.size):
                runs[-1] = (m.group, m.size, runs[-1][2] + 1)
            else:
                runs.append((m.group, m.size, 1))
        parts = [f"{n} {group} {size.cpus} CPU/{size.memory_mb} MB" for group, size, n in runs]
        return f"{' + '.join(parts) or 'no VMs'} ({self.source})"


@dataclass(frozen=True)
class SizeUnknown:
    """No lab size: the Vagrantfile's answer is missing or has no usable ``machines``."""

    #: box.NO_VAGRANT, box.TIMEOUT or box.FAILED (as :attr:`VagrantConfig.unknown`).
    unknown: str
    message: str


def _count(value: object, minimum: int) -> int | None:
    """An integer >= ``minimum`` from the JSON (not a bool, not a string), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return None
    return value


def _machine(entry: object) -> Machine | None:
    if not isinstance(entry, Mapping):
        return None
    name, group = entry.get("name"), entry.get("group")
    cpus, memory = _count(entry.get("cpus"), 1), _count(entry.get("memory"), 1)
    if not isinstance(name, str) or not isinstance(group, str) or cpus is None or memory is None:
        return None
    return Machine(name, group, cpus, memory)


def lab_nodes(config: VagrantConfig) -> NodeKind | None:
    """The kind of node in the Vagrantfile's answer: "vms" without the key (or without an
    answer: the checks then are today's, for VMs), None for a value that is neither."""
    raw = (config.values or {}).get("nodes")
    if raw is None:
        return VMS
    return next((kind for kind in NODE_KINDS if kind == raw), None)


def lab_size(config: VagrantConfig) -> LabSize | SizeUnknown:
    """The lab size in the Vagrantfile's answer, or why there is none."""
    values = config.values
    if values is None:
        return SizeUnknown(config.unknown or FAILED, config.message)
    nodes = lab_nodes(config)
    if nodes is None:
        return SizeUnknown(
            FAILED,
            f"the Vagrantfile's JSON has nodes {values.get('nodes')!r}, not one of {', '.join(NODE_KINDS)}",
        )
    raw = values.get("machines")
    provider = values.get("provider")
    entries = raw if isinstance(raw, Sequence) and not isinstance(raw, str) else None
    machines = [_machine(entry) for entry in entries or []]
    if not entries or None in machines or not isinstance(provider, str) or not provider:
        shown = {"provider": provider, "machines": raw}
        return SizeUnknown(
            FAILED,
            "the Vagrantfile's JSON has no usable provider and machines "
            f"(name, group, cpus, memory in MB): {str(shown)[:200]}",
        )
    return LabSize(tuple(m for m in machines if m is not None), provider, nodes=nodes)


def load_lab_size(root: Path, environ: Mapping[str, str]) -> LabSize:
    """Ask the Vagrantfile in ``root`` (with ``environ``) for the lab size; raise when it cannot say.

    For callers outside the doctor that need a size or nothing (``canarylab up``); the
    doctor itself asks once and shares the answer with the box check (run.py).
    """
    size = lab_size(vagrant_config(root, environ))
    if isinstance(size, SizeUnknown):
        raise CanarylabError(
            f"lab size unknown: {size.message}",
            "run `CANARYLAB_CONFIG_JSON=- vagrant validate` in the project (docs/lab.md, 'Settings'); "
            "`canarylab doctor` says more",
        )
    return size
