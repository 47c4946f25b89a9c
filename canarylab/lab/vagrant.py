"""Vagrant from Python: streamed commands, machine states, and a provider pre-check."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from canarylab.doctor import checks
from canarylab.doctor.checks import Provider
from canarylab.doctor.labsize import LabSize
from canarylab.doctor.model import FAIL, Check
from canarylab.errors import CanarylabError

DOCTOR_HINT = "run `canarylab doctor` to check Vagrant, the provider and the host"


def require_vagrant() -> str:
    path = shutil.which("vagrant")
    if path is None:
        raise CanarylabError(
            "vagrant is not installed (or not on PATH)", f"{checks.VAGRANT_INSTALL}; {DOCTOR_HINT}"
        )
    return path


def require_provider(providers: list[Provider], lab: LabSize) -> Check:
    """Fail early, with the fix, when the lab's provider is not usable on this host."""
    check = checks.check_providers(providers, lab.provider)
    if check.status == FAIL:
        raise CanarylabError(check.detail, f"{check.fix}; {DOCTOR_HINT}")
    return check


def run_streamed(args: list[str], root: Path, env: Mapping[str, str] | None = None) -> int:
    """`vagrant ARGS` in the project dir, its output straight to ours.

    Ctrl-C reaches Vagrant too (same process group); we wait for it to stop
    cleanly, then re-raise KeyboardInterrupt.
    """
    vagrant = require_vagrant()
    with subprocess.Popen([vagrant, *args], cwd=root, env=env) as proc:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
            raise


def run_checked(args: list[str], root: Path, what: str, env: Mapping[str, str] | None = None) -> None:
    code = run_streamed(args, root, env)
    if code != 0:
        raise CanarylabError(
            f"`vagrant {' '.join(args)}` failed (exit {code}) while {what}",
            f"read Vagrant's output above; {DOCTOR_HINT}",
        )


@dataclass(frozen=True)
class Machine:
    name: str
    state: str
    provider: str

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def created(self) -> bool:
        return self.state not in ("not_created", "")


def parse_machine_readable(text: str) -> list[Machine]:
    """`vagrant status --machine-readable` lines: timestamp,target,type,data..."""
    states: dict[str, str] = {}
    providers: dict[str, str] = {}
    order: list[str] = []
    for line in text.splitlines():
        fields = line.split(",", 3)
        if len(fields) < 4 or not fields[1]:
            continue
        _, target, kind, data = fields
        if target not in order:
            order.append(target)
        if kind == "state":
            states[target] = data.strip()
        elif kind == "provider-name":
            providers[target] = data.strip()
    return [Machine(name, states.get(name, ""), providers.get(name, "")) for name in order if name in states]


def machine_readable_error(text: str) -> str | None:
    """The message of an `error-exit` line of Vagrant's machine-readable output, unescaped."""
    for line in text.splitlines():
        fields = line.split(",", 4)
        if len(fields) == 5 and fields[2] == "error-exit":
            message = fields[4].replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n")
            return message.strip()
    return None


def machines(root: Path) -> list[Machine]:
    vagrant = require_vagrant()
    out = subprocess.run(
        [vagrant, "status", "--machine-readable"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "VAGRANT_NO_COLOR": "1"},
    )
    if out.returncode != 0:
        text = out.stdout + "\n" + out.stderr
        message = machine_readable_error(text) or "\n".join(text.strip().splitlines()[-5:])
        raise CanarylabError(f"`vagrant status` failed (exit {out.returncode}):\n{message}", DOCTOR_HINT)
    return parse_machine_readable(out.stdout)
