"""Every molecule scenario of every role: `molecule test` (create, prepare,
converge, idempotence, verify, destroy) in a systemd Debian 12 container.

Scenarios are discovered (roles/*/molecule/*/molecule.yml), so a new one is
picked up without touching this file.  Each runs in its role directory with the
shared base config (.config/molecule/config.yml), under its own container name,
with a timeout; whatever happens, no container of it is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(ROOT.glob("roles/*/molecule/*/molecule.yml"))
# Generous for a loaded CI machine; a scenario here takes 1 to 4 minutes.
TIMEOUT_S = int(os.environ.get("CANARYLAB_MOLECULE_TIMEOUT", "900"))
TAIL_LINES = 120

pytestmark = pytest.mark.molecule


def _scenario_id(molecule_yml: Path) -> str:
    return f"{molecule_yml.parents[2].name}/{molecule_yml.parent.name}"


def _env(base_image: str, instance: str, tmp_path: Path) -> dict[str, str]:
    """scripts/env.sh's environment, plus what the base config reads."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [str(ROOT / ".venv" / "bin"), str(ROOT / ".cache" / "bin"), env.get("PATH", ""), "/usr/local/go/bin"]
    )
    env.update(
        {
            "CANARYLAB_ROOT": str(ROOT),
            "CONTAINERS_CONF": str(ROOT / "containers" / "containers.conf"),
            "CANARYLAB_BASE_IMAGE": base_image,
            "CANARYLAB_MOLECULE_INSTANCE": instance,
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "NO_COLOR": "1",
            "PY_COLORS": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own ansible.cfg per scenario
    return env


def _container_names(molecule_yml: Path, env: dict[str, str]) -> list[str]:
    """The instance names of the scenario: its own platforms, else the base config's one."""
    platforms = (yaml.safe_load(molecule_yml.read_text()) or {}).get("platforms") or []

    def expand(name: str) -> str:
        return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or (m.group(2) or ""), name)

    names = [expand(str(p["name"])) for p in platforms if "name" in p]
    return names or [env["CANARYLAB_MOLECULE_INSTANCE"]]


def _existing(names: list[str]) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=False
    ).stdout.split()
    return [n for n in names if n in out]


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-TAIL_LINES:])


@pytest.mark.parametrize("molecule_yml", SCENARIOS, ids=_scenario_id)
def test_molecule_scenario(molecule_yml: Path, base_image: str, tmp_path: Path) -> None:
    role_dir = molecule_yml.parents[2]
    scenario = molecule_yml.parent.name
    instance = f"canarylab-{role_dir.name}-{scenario}"
    env = _env(base_image, instance, tmp_path)
    names = _container_names(molecule_yml, env)
    log = tmp_path / "molecule.log"

    started = time.monotonic()
    timed_out = False
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["molecule", "test", "-s", scenario],
            cwd=role_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    elapsed = time.monotonic() - started
    print(f"molecule {_scenario_id(molecule_yml)}: rc={rc} in {elapsed:.0f}s")

    leftovers = _existing(names)
    if leftovers or timed_out:
        # `molecule test` destroys on failure too; a timeout or a crash may not.
        subprocess.run(
            ["molecule", "destroy", "-s", scenario],
            cwd=role_dir,
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
        still = _existing(names)
        if still:
            subprocess.run(["podman", "rm", "-f", *still], capture_output=True, check=False)
    assert not timed_out, f"timed out after {TIMEOUT_S}s\n{_tail(log)}"
    assert rc == 0, f"molecule test failed (rc={rc}) after {elapsed:.0f}s\n{_tail(log)}"
    assert not leftovers, f"molecule test left containers {leftovers} behind\n{_tail(log)}"
