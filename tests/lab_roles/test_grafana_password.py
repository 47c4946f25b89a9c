"""roles/monitoring, entry point `password`: Grafana's admin password is generated
once into a 0600 file on the Ansible host, read back on later runs, and never shown."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, password_file: Path) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "password.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Grafana password",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Password",
                            "ansible.builtin.include_role": {"name": "monitoring", "tasks_from": "password"},
                            "vars": {"monitoring_grafana_password_file": str(password_file)},
                        },
                        {
                            "name": "Length of the password",
                            "ansible.builtin.debug": {
                                "msg": "length={{ monitoring_grafana_admin_password | length }}"
                            },
                        },
                    ],
                }
            ]
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook), "-v"]
    cmd += ["-e", f"ansible_python_interpreter={sys.executable}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)


def test_password_is_generated_once_private_and_never_printed(tmp_path: Path) -> None:
    password_file = tmp_path / "state" / "grafana-admin-password"
    first = run(tmp_path, password_file)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    password = password_file.read_text().strip()
    assert len(password) == 24
    assert password.isalnum()
    assert password not in ("admin", "prom-operator")
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(password_file.parent.stat().st_mode) == 0o700
    assert "length=24" in first.stdout
    assert password not in first.stdout + first.stderr

    second = run(tmp_path, password_file)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert password_file.read_text().strip() == password
    assert password not in second.stdout + second.stderr
    assert "changed=0" in second.stdout
