"""roles/canarylab_app's chart digest: the role's own tasks (the find on the Ansible
host and the set_fact), run by Ansible on a copy of the chart.  The digest is what
makes kubernetes.core.helm upgrade the release when only a template changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "roles" / "canarylab_app" / "tasks" / "main.yml"


def _role_task(name_start: str) -> dict[str, Any]:
    (task,) = [t for t in yaml.safe_load(TASKS.read_text()) if t["name"].startswith(name_start)]
    return dict(task)


def digest(project: Path, tmp_path: Path) -> str:
    tasks = [_role_task("Files of the project's chart"), _role_task("Digest of the project's chart")]
    for task in tasks:
        task.pop("delegate_to", None)
        task.pop("become", None)
    tasks.append(
        {"name": "Show", "ansible.builtin.debug": {"msg": "digest={{ canarylab_app_chart_digest }}"}}
    )
    playbook = tmp_path / "digest.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Digest",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": tasks,
                }
            ]
        )
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)]
    cmd += [
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        f"canarylab_app_project_dir={project}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if "digest=" in ln]
    return line.split("digest=", 1)[1].strip().strip("'\"")


def expected(chart: Path) -> str:
    """sha256 over the sorted "<path> <sha1 of the content>" entries of the chart's files, joined by ";"."""
    lines = sorted(
        f"{p.relative_to(chart)} {hashlib.sha1(p.read_bytes()).hexdigest()}"
        for p in chart.rglob("*")
        if p.is_file()
    )
    return hashlib.sha256(";".join(lines).encode()).hexdigest()[:12]


def test_chart_digest_follows_the_templates(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "charts" / "canarylab", project / "charts" / "canarylab")
    chart = project / "charts" / "canarylab"
    first = digest(project, tmp_path)
    assert len(first) == 12
    assert int(first, 16) >= 0
    assert first == expected(chart)
    assert digest(project, tmp_path) == first  # stable across runs

    template = chart / "templates" / "service.yaml"
    template.write_text(template.read_text() + "\n# a template edit\n")
    second = digest(project, tmp_path)
    assert second != first
    assert second == expected(chart)
