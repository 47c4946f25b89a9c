"""Container nodes: what `canarylab up --nodes containers` measures and builds beside Vagrant.

The nodes themselves are the Vagrantfile's (docker provider, podman behind it);
this module only builds their image and watches their memory while the lab is
provisioned, so the peak that users need to size a laptop is measured, not guessed.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from canarylab.doctor.labsize import NODE_KINDS, NodeKind
from canarylab.errors import CanarylabError

__all__ = ["NODE_KINDS", "MemoryWatch", "NodeKind", "build_node_image"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
SAMPLE_SECONDS = 2.0


def build_node_image(root: Path) -> str:
    """scripts/build-node-image.sh: build (or reuse) the node image; its name."""
    script = root / "scripts" / "build-node-image.sh"
    proc = subprocess.run([str(script)], cwd=root, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise CanarylabError(
            f"building the node image failed (exit {proc.returncode})",
            "read the script's output above; `make setup` installs podman and debootstrap",
        )
    return proc.stdout.strip().splitlines()[-1]


def cgroup_dir(container: str) -> Path | None:
    """The container's memory cgroup (v1: memory/<path>, v2: <path>), or None if it is not running."""
    proc = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.CgroupPath}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    path = proc.stdout.strip().lstrip("/")
    if proc.returncode != 0 or not path:
        return None
    for candidate in (CGROUP_ROOT / "memory" / path, CGROUP_ROOT / path):
        if candidate.is_dir():
            return candidate
    return None


def _stat(text: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[name] = int(value)
    return values


def working_set_bytes(cgroup: Path) -> int | None:
    """Memory in use minus inactive page cache, as `podman stats` and kubelet count it."""
    try:
        if (cgroup / "memory.usage_in_bytes").is_file():  # cgroup v1
            usage = int((cgroup / "memory.usage_in_bytes").read_text())
            inactive = _stat((cgroup / "memory.stat").read_text()).get("total_inactive_file", 0)
        else:  # cgroup v2
            usage = int((cgroup / "memory.current").read_text())
            inactive = _stat((cgroup / "memory.stat").read_text()).get("inactive_file", 0)
    except (OSError, ValueError):
        return None
    return max(usage - inactive, 0)


@dataclass
class MemoryWatch:
    """Samples each node's working set every few seconds in a thread; keeps the peak (MB)."""

    containers: tuple[str, ...]
    interval: float = SAMPLE_SECONDS
    peak_mb: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def of(cls, containers: Iterable[str]) -> MemoryWatch:
        return cls(tuple(containers))

    def sample(self) -> None:
        for name in self.containers:
            cgroup = cgroup_dir(name)
            used = working_set_bytes(cgroup) if cgroup is not None else None
            if used is not None:
                self.peak_mb[name] = max(self.peak_mb.get(name, 0), round(used / 2**20))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._run, name="node-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.sample()

    def render(self) -> str:
        if not self.peak_mb:
            return "  (no node was running)"
        lines = [f"  {name:<20} {mb:>6} MB" for name, mb in sorted(self.peak_mb.items())]
        lines.append(f"  {'all nodes (sum)':<20} {sum(self.peak_mb.values()):>6} MB")
        return "\n".join(lines)
