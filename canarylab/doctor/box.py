"""The facts behind the doctor's ``box`` check: what the Vagrantfile resolved, the pins, the CPU.

The Vagrantfile is the only place that decides the box and its version (env > lab.yml >
the pin in versions.yml), the provider and the machines with their CPUs and memory.
The doctor does not repeat that: :func:`vagrant_config` runs
``vagrant validate --ignore-provider`` in the project with ``CANARYLAB_CONFIG_JSON`` set,
and the Vagrantfile writes what it resolved (nodes, provider, os, box, box_version, box_from,
version_from, machines) as JSON.  Vagrant keeps its per-project state (``.vagrant/``) in
a temporary directory for that run, so nothing is written into the project and no
machine is looked at.  One answer per doctor run serves the box check and, through
labsize.py, the provider, memory, CPU and disk checks.

What the doctor adds is data the Vagrantfile does not need: which provider/architecture
builds of each pinned box are known to exist (``builds``, ``fallback`` in
``vagrant_boxes``), and this host's architecture.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

VERSIONS_FILE = Path("inventory/group_vars/all/versions.yml")
#: platform.machine() -> the architecture names Vagrant boxes use.
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
#: ``vagrant validate`` takes 1-2 s; a cold start on a slow laptop a few more.
VALIDATE_TIMEOUT = 60.0
#: Why the Vagrantfile's answer is unknown (:attr:`VagrantConfig.unknown`).
NO_VAGRANT, FAILED, TIMEOUT = "no-vagrant", "failed", "timeout"


@dataclass(frozen=True)
class PinnedBox:
    """One ``vagrant_boxes`` entry: the box, its version, and the builds known to exist."""

    box: str
    version: str
    builds: Mapping[str, frozenset[str]] = field(default_factory=dict)
    fallback: str | None = None


@dataclass(frozen=True)
class VagrantConfig:
    """The JSON the Vagrantfile wrote (``CANARYLAB_CONFIG_JSON``), or why there is none."""

    #: {"nodes", "provider", "os", "box", "box_version", "box_from", "version_from", "machines"}
    values: Mapping[str, object] | None = None
    #: None when ``values`` is there; else NO_VAGRANT, FAILED or TIMEOUT.
    unknown: str | None = None
    #: what went wrong, for the check's detail (the Vagrantfile's own message when it stopped).
    message: str = ""


def host_arch(machine: str | None = None) -> str | None:
    """``amd64`` / ``arm64`` for this host (or ``machine``), None when it is neither."""
    return ARCHITECTURES.get((machine if machine is not None else platform.machine()).lower())


def _pinned(entry: object) -> PinnedBox | None:
    if not isinstance(entry, Mapping) or not entry.get("box"):
        return None
    raw = entry.get("builds")
    builds = {
        str(provider): frozenset(str(a) for a in archs or [])
        for provider, archs in (raw.items() if isinstance(raw, Mapping) else [])
    }
    fallback = entry.get("fallback")
    return PinnedBox(
        str(entry["box"]), str(entry.get("version") or ""), builds, str(fallback) if fallback else None
    )


def load_pins(root: Path) -> dict[str, PinnedBox]:
    """``vagrant_boxes`` of versions.yml, per os; empty when the file or the key is missing."""
    try:
        data = yaml.safe_load((root / VERSIONS_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    boxes = data.get("vagrant_boxes") if isinstance(data, Mapping) else None
    if not isinstance(boxes, Mapping):
        return {}
    pins = {str(os_name): _pinned(entry) for os_name, entry in boxes.items()}
    return {os_name: pin for os_name, pin in pins.items() if pin is not None}


def _vagrant_message(text: str) -> str:
    """The Vagrantfile's own ``canarylab: ...`` lines when there are any, else Vagrant's text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("canarylab:")]
    message = " ".join(ours or lines) or "no output"
    return message if len(message) <= 400 else message[:397] + "..."


def _read_config(text: str | None, returncode: int, output: str) -> VagrantConfig:
    """The JSON the Vagrantfile wrote (``text``), else what ``vagrant validate`` said."""
    if text is None:
        if returncode != 0:
            return VagrantConfig(
                unknown=FAILED, message=f"the Vagrantfile failed: {_vagrant_message(output)}"
            )
        return VagrantConfig(
            unknown=FAILED,
            message="the Vagrantfile wrote no CANARYLAB_CONFIG_JSON (is it canarylab's Vagrantfile?)",
        )
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        return VagrantConfig(unknown=FAILED, message=f"the Vagrantfile wrote invalid JSON: {err}")
    if not isinstance(values, Mapping):
        return VagrantConfig(unknown=FAILED, message=f"the Vagrantfile's JSON is not an object: {text[:200]}")
    # Container nodes use no box; VMs (``nodes`` absent: a Vagrantfile from before) always do.
    if values.get("nodes") != "containers" and not isinstance(values.get("box"), str):
        return VagrantConfig(unknown=FAILED, message=f"the Vagrantfile's JSON has no box: {text[:200]}")
    return VagrantConfig(values=values)


def vagrant_config(
    root: Path, environ: Mapping[str, str], timeout: float = VALIDATE_TIMEOUT
) -> VagrantConfig:
    """Ask the Vagrantfile in ``root`` what it resolved, with ``environ`` as vagrant's environment.

    ``vagrant validate`` may exit non-zero after the Vagrantfile was evaluated (a provider
    whose plugin is missing): the JSON is used whenever it was written.
    """
    vagrant = shutil.which("vagrant", path=environ.get("PATH", os.defpath))
    if vagrant is None:
        return VagrantConfig(unknown=NO_VAGRANT, message="vagrant is not installed")
    with tempfile.TemporaryDirectory(prefix="canarylab-doctor-") as scratch:
        out = Path(scratch) / "config.json"
        env = {
            **environ,
            "CANARYLAB_CONFIG_JSON": str(out),
            "VAGRANT_CWD": str(root),
            # Vagrant's per-project state (.vagrant/): a throwaway one, so nothing is
            # written into the project and the lab's machines are never looked at.
            "VAGRANT_DOTFILE_PATH": str(Path(scratch) / "dotfile"),
        }
        try:
            result = subprocess.run(
                [vagrant, "validate", "--ignore-provider", "--no-color"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return VagrantConfig(
                unknown=TIMEOUT, message=f"`vagrant validate` did not finish within {timeout:g} s"
            )
        except OSError as err:
            return VagrantConfig(unknown=FAILED, message=f"`vagrant validate` could not start: {err}")
        text = out.read_text() if out.is_file() else None
    return _read_config(text, result.returncode, result.stdout + "\n" + result.stderr)
