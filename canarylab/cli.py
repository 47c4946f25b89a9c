"""`canarylab` command line.  Each subcommand lives in canarylab/commands/<name>.py
and exposes ``register(subparsers)``; its handler returns the exit code."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from canarylab import __version__
from canarylab.errors import CanarylabError

#: Modules under canarylab.commands, in --help order.
COMMANDS: tuple[str, ...] = ("contract", "doctor", "lab", "dashboard", "experiment", "report", "bundle")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canarylab",
        description="A laptop lab for continuous experimentation: stable vs canary, measured honestly.",
    )
    parser.add_argument("--version", action="version", version=f"canarylab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"canarylab.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CanarylabError as err:
        print(f"canarylab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("canarylab: interrupted", file=sys.stderr)
        return 130
    return code
