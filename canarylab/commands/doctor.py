"""`canarylab doctor [--json] [--target lab|local]`: is this host ready for the lab or the local target?"""

from __future__ import annotations

import argparse
import json
import sys

from canarylab.doctor import TARGETS, Check, failed, run_doctor
from canarylab.paths import project_root

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
_COLOUR = {"ok": "\x1b[32m", "warn": "\x1b[33m", "fail": "\x1b[31m"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check this host before anything starts (Vagrant, provider, box, CPU, RAM, disk, ports, tools)",
        description="Check this host for the lab (Vagrant + a provider, the box the Vagrantfile "
        "resolves and whether it has a build for that provider and this CPU, hardware "
        "virtualisation, RAM/CPUs/disk for the configured lab size, VirtualBox host-only range; "
        "for container nodes instead: Linux, root, podman with runc, podman-docker's docker shim "
        "first on PATH, cgroups, br_netfilter, overlay, vxlan, memory, the offline bundle) "
        "or for the local "
        "target (free ports, bombardier, Prometheus). Exits 1 when any check fails.",
    )
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="lab",
        help="what to check for: the Vagrant lab (default) or the local target on 127.0.0.1",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON instead of text")
    p.set_defaults(func=_doctor)


def render_text(checks: list[Check], target: str, colour: bool) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"canarylab doctor --target {target}"]
    for c in checks:
        mark = _MARK[c.status]
        if colour:
            mark = f"{_COLOUR[c.status]}{mark}\x1b[0m"
        lines.append(f"  {mark}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"  {'':4}  {'':<{width}}  fix: {c.fix}")
    verdict = "not ready: fix the FAIL lines above" if failed(checks) else "ready"
    lines.append(f"{target}: {verdict}")
    return "\n".join(lines)


def render_json(checks: list[Check], target: str) -> str:
    return json.dumps(
        {"target": target, "ok": not failed(checks), "checks": [c.to_dict() for c in checks]}, indent=2
    )


def _doctor(args: argparse.Namespace) -> int:
    checks = run_doctor(project_root(), args.target)
    if args.json:
        print(render_json(checks, args.target))
    else:
        print(render_text(checks, args.target, colour=sys.stdout.isatty()))
    return 1 if failed(checks) else 0
