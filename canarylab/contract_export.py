"""Renders the shared names of canarylab_contract for Ansible and for the Helm chart.

The rendered files are committed, so that Ansible and Helm work without Python;
`canarylab contract export --check` (run by the tests) fails when they drift.
"""

from __future__ import annotations

from pathlib import Path

import yaml

import canarylab_contract
from canarylab import generated
from canarylab.generated import Rendered

HEADER = (
    "# Generated from services/contract (canarylab_contract) by `canarylab contract export`.\n"
    "# Do not edit: change the contract and export again.\n"
)


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
    return generated.stale(render(root))


def write(root: Path) -> list[Path]:
    return generated.write(render(root))
