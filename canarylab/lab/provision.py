"""How long provisioning took on this laptop: phases, total, host facts, versions.

Every `canarylab up` writes results/provision-<UTC timestamp>.json, so the
time to build the lab is measured on every user's machine, not guessed.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from canarylab.doctor.facts import HostFacts
from canarylab.doctor.labsize import LabSize
from canarylab.runner import Phase, PlaybookResult


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class HostInfo:
    system: str
    release: str
    machine: str
    os: str
    python: str
    cpus: int | None
    memory_mb: int | None


def host_info(facts: HostFacts) -> tuple[HostInfo, dict[str, str | None]]:
    """This host, and the versions of the tools that built the lab."""
    info = HostInfo(
        system=platform.system(),
        release=platform.release(),
        machine=platform.machine(),
        os=platform.platform(),
        python=sys.version.split()[0],
        cpus=os.cpu_count(),
        memory_mb=facts.memory_mb,
    )
    versions: dict[str, str | None] = {
        "vagrant": facts.vagrant,
        "ansible-core": _package_version("ansible-core"),
        "ansible-runner": _package_version("ansible-runner"),
        "canarylab": _package_version("canarylab"),
    }
    for provider in facts.providers:
        versions[f"provider {provider.name}"] = provider.version
    return info, versions


@dataclass
class ProvisionRecord:
    started: str
    lab: dict[str, object]
    host: dict[str, object]
    versions: dict[str, str | None]
    phases: list[dict[str, object]] = field(default_factory=list)
    total_seconds: float = 0.0
    ok: bool = False
    playbook: str = ""
    log_path: str | None = None
    failure: str | None = None
    #: Container nodes only: each node's peak working set while provisioning (MB).
    node_memory_peak_mb: dict[str, int] = field(default_factory=dict)

    def add_phase(self, name: str, seconds: float, kind: str) -> None:
        self.phases.append({"name": name, "kind": kind, "seconds": round(seconds, 3)})

    def add_playbook(self, result: PlaybookResult) -> None:
        for phase in result.phases:
            self.add_phase(phase.name, phase.seconds, phase.kind)
        self.playbook = result.playbook
        self.log_path = str(result.log_path)
        self.ok = result.ok
        self.failure = None if result.ok else result.summary()


def new_record(
    facts: HostFacts, lab: LabSize | None, started: datetime, inventory: Path | None = None
) -> ProvisionRecord:
    """The record of one provisioning: the Vagrant lab's size, or the inventory of hosts of one's own."""
    info, versions = host_info(facts)
    lab_dict: dict[str, object] = {"inventory": str(inventory)} if inventory is not None else {}
    if lab is not None:
        lab_dict.update(
            {
                "nodes": lab.nodes,
                "provider": lab.provider,
                "workers": lab.workers,
                "controller": asdict(lab.controller),
                "worker": asdict(lab.worker),
                "source": lab.source,
            }
        )
    return ProvisionRecord(
        started=started.strftime("%Y-%m-%dT%H:%M:%SZ"), lab=lab_dict, host=asdict(info), versions=versions
    )


def write_record(record: ProvisionRecord, results: Path, started: datetime) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"provision-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(asdict(record), indent=2) + "\n")
    return path


def render_phases(record: ProvisionRecord) -> str:
    """The phase table printed at the end of `canarylab up`."""
    phases = [Phase(str(p["name"]), float(str(p["seconds"])), str(p["kind"])) for p in record.phases]
    width = max([len(p.name) for p in phases] + [5])
    lines = [f"  {p.name:<{width}}  {p.kind:<7}  {_duration(p.seconds):>8}" for p in phases]
    lines.append(f"  {'total':<{width}}  {'':<7}  {_duration(record.total_seconds):>8}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def utc_now() -> datetime:
    return datetime.now(UTC)
