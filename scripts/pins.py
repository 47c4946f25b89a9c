#!/usr/bin/env python3
"""Print one pinned value from inventory/group_vars/all/versions.yml (the only place pins live)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

VERSIONS = Path(__file__).resolve().parent.parent / "inventory" / "group_vars" / "all" / "versions.yml"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} NAME", file=sys.stderr)
        return 2
    pins = yaml.safe_load(VERSIONS.read_text())
    if argv[1] not in pins:
        print(f"{argv[1]} is not pinned in {VERSIONS}", file=sys.stderr)
        return 1
    print(pins[argv[1]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
