"""`canarylab contract export [--check]`: render the shared names for Ansible and Helm."""

from __future__ import annotations

import argparse

from canarylab import contract_export
from canarylab.errors import CanarylabError
from canarylab.paths import project_root


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("contract", help="render shared names (metrics, header, ports) for Ansible and Helm")
    csub = p.add_subparsers(dest="contract_command", metavar="ACTION", required=True)
    e = csub.add_parser("export", help="write inventory/group_vars/all/contract.yml and the chart's copy")
    e.add_argument("--check", action="store_true", help="only check that the rendered files are current")
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    root = project_root()
    if args.check:
        stale = contract_export.stale(root)
        if stale:
            names = ", ".join(str(p.relative_to(root)) for p in stale)
            raise CanarylabError(f"out of date: {names}", "run `canarylab contract export` and commit")
        print("contract exports are current")
        return 0
    for path in contract_export.write(root):
        print(f"wrote {path.relative_to(root)}")
    return 0
