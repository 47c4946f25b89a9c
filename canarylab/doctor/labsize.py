"""How big the lab is: read from lab.yml beside the Vagrantfile and CANARYLAB_* variables.

Defaults (documented in docs/cli.md): one controller with 2 CPUs and 4096 MB,
two workers with 2 CPUs and 3072 MB each.  lab.yml may set ``workers`` and
``controller``/``worker`` mappings with ``cpus`` and ``memory`` (MB), or the flat
keys ``controller_cpus``, ``controller_memory``, ``worker_cpus``,
``worker_memory``, and ``provider``.  The environment variables CANARYLAB_WORKERS,
CANARYLAB_CONTROLLER_CPUS, CANARYLAB_CONTROLLER_MEMORY, CANARYLAB_WORKER_CPUS and
CANARYLAB_WORKER_MEMORY override the file, as they do for the Vagrantfile; the
provider comes from VAGRANT_DEFAULT_PROVIDER, else CANARYLAB_PROVIDER, else lab.yml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from canarylab.errors import CanarylabError

LAB_FILE = "lab.yml"


@dataclass(frozen=True)
class VmSize:
    cpus: int
    memory_mb: int


@dataclass(frozen=True)
class LabSize:
    controller: VmSize = VmSize(cpus=2, memory_mb=4096)
    worker: VmSize = VmSize(cpus=2, memory_mb=3072)
    workers: int = 2
    source: str = "defaults"
    provider: str = "virtualbox"

    @property
    def vms(self) -> int:
        return 1 + self.workers

    @property
    def memory_mb(self) -> int:
        return self.controller.memory_mb + self.workers * self.worker.memory_mb

    @property
    def cpus(self) -> int:
        return self.controller.cpus + self.workers * self.worker.cpus

    @property
    def largest_vm_cpus(self) -> int:
        return max(self.controller.cpus, self.worker.cpus if self.workers else 0)

    def describe(self) -> str:
        return (
            f"controller {self.controller.cpus} CPU/{self.controller.memory_mb} MB + "
            f"{self.workers} worker(s) {self.worker.cpus} CPU/{self.worker.memory_mb} MB ({self.source})"
        )


def _int(value: object, where: str, minimum: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise CanarylabError(
            f"lab size: {where} must be an integer >= {minimum}, got {value!r}",
            f"fix {where} (see docs/cli.md, 'Lab size')",
        )
    return number


def _vm(base: VmSize, raw: Mapping[str, object], role: str, where: str) -> VmSize:
    nested = raw.get(role)
    cpus: object = None
    memory: object = None
    if isinstance(nested, Mapping):
        cpus, memory = nested.get("cpus"), nested.get("memory")
    cpus = raw.get(f"{role}_cpus", cpus)
    memory = raw.get(f"{role}_memory", memory)
    return VmSize(
        cpus=base.cpus if cpus is None else _int(cpus, f"{where} {role} cpus", 1),
        memory_mb=base.memory_mb if memory is None else _int(memory, f"{where} {role} memory", 512),
    )


def from_mapping(base: LabSize, raw: Mapping[str, object], where: str) -> LabSize:
    workers = raw.get("workers")
    provider = raw.get("provider")
    return replace(
        base,
        provider=str(provider) if provider else base.provider,
        controller=_vm(base.controller, raw, "controller", where),
        worker=_vm(base.worker, raw, "worker", where),
        workers=base.workers if workers is None else _int(workers, f"{where} workers", 0),
        source=where,
    )


def from_environ(base: LabSize, environ: Mapping[str, str]) -> LabSize:
    names = {
        "workers": "CANARYLAB_WORKERS",
        "controller_cpus": "CANARYLAB_CONTROLLER_CPUS",
        "controller_memory": "CANARYLAB_CONTROLLER_MEMORY",
        "worker_cpus": "CANARYLAB_WORKER_CPUS",
        "worker_memory": "CANARYLAB_WORKER_MEMORY",
    }
    minimum = dict.fromkeys(names, 1) | {"workers": 0, "controller_memory": 512, "worker_memory": 512}
    raw = {key: _int(environ[var], var, minimum[key]) for key, var in names.items() if environ.get(var)}
    # the Vagrantfile's order: VAGRANT_DEFAULT_PROVIDER, then CANARYLAB_PROVIDER, then lab.yml
    provider = environ.get("VAGRANT_DEFAULT_PROVIDER") or environ.get("CANARYLAB_PROVIDER")
    if provider:
        base = replace(base, provider=provider.strip())
    if not raw:
        return base
    sized = from_mapping(base, raw, "environment")
    return replace(
        sized, source=f"{base.source} + environment" if base.source != "defaults" else "environment"
    )


def load_lab_size(root: Path, environ: Mapping[str, str]) -> LabSize:
    """Defaults, then lab.yml (if present), then CANARYLAB_* environment variables."""
    size = LabSize()
    path = root / LAB_FILE
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise CanarylabError(f"cannot parse {path}: {err}", f"fix the YAML in {path}") from err
        if not isinstance(raw, Mapping):
            raise CanarylabError(f"{path} must be a mapping", "see docs/cli.md, 'Lab size'")
        size = from_mapping(size, raw, LAB_FILE)
    return from_environ(size, environ)
