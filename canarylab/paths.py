"""Where things live: the project tree, the host-side state dir, results."""

from __future__ import annotations

import os
from pathlib import Path

from canarylab.errors import CanarylabError

_MARKERS = ("ansible.cfg", "experiments", "roles")


def project_root(start: Path | None = None) -> Path:
    """The canarylab checkout: $CANARYLAB_ROOT, else the nearest parent holding ansible.cfg and roles/."""
    env = os.environ.get("CANARYLAB_ROOT")
    if env:
        return Path(env).resolve()
    candidates = [start or Path.cwd(), Path(__file__).resolve().parent.parent]
    for base in candidates:
        for d in (base, *base.parents):
            if all((d / m).exists() for m in _MARKERS):
                return d
    raise CanarylabError(
        "cannot find the canarylab project directory",
        "run the command inside the canarylab checkout, or set CANARYLAB_ROOT",
    )


def state_dir(root: Path | None = None) -> Path:
    """Host-side state of the lab (kubeconfig, Grafana password): never committed."""
    return (root or project_root()) / ".canarylab"


def results_dir(root: Path | None = None) -> Path:
    return (root or project_root()) / "results"
