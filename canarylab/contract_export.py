"""Renders the shared names of canarylab_contract for Ansible and for the Helm chart.

The rendered files are committed, so that Ansible and Helm work without Python;
`canarylab contract export --check` (run by the tests) fails when they drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

import canarylab_contract

HEADER = (
    "# Generated from services/contract (canarylab_contract) by `canarylab contract export`.\n"
    "# Do not edit: change the contract and export again.\n"
)


@dataclass(frozen=True)
class Rendered:
    path: Path
    text: str


def render(root: Path) -> list[Rendered]:
    data = canarylab_contract.as_dict()
    ansible = yaml.safe_dump({"canarylab_contract": data}, sort_keys=False)
    helm = yaml.safe_dump(data, sort_keys=False)
    return [
        Rendered(root / "inventory/group_vars/all/contract.yml", f"---\n{HEADER}{ansible}"),
        Rendered(root / "charts/canarylab/files/contract.yaml", f"{HEADER}{helm}"),
    ]


def stale(root: Path) -> list[Path]:
    """Rendered files that are missing or differ from the contract."""
    return [r.path for r in render(root) if not r.path.exists() or r.path.read_text() != r.text]


def write(root: Path) -> list[Path]:
    written = []
    for r in render(root):
        if not r.path.exists() or r.path.read_text() != r.text:
            r.path.parent.mkdir(parents=True, exist_ok=True)
            r.path.write_text(r.text)
            written.append(r.path)
    return written
