"""`ansible-playbook experiment.yml` without a load host says what to do, instead of matching no host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from canarylab.procs import console_script


def test_experiment_playbook_refuses_an_inventory_without_a_load_host(root: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "empty.yml"
    inventory.write_text("all:\n  hosts: {}\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg")}
    env["ANSIBLE_LOG_PATH"] = str(tmp_path / "ansible.log")
    run = subprocess.run(
        [console_script("ansible-playbook"), "-i", str(inventory), str(root / "experiment.yml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0
    assert "no canarylab_load host" in run.stdout
    assert "vagrant up" in run.stdout
