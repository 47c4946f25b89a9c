"""Every apt task of the lab roles waits long enough for the dpkg lock.

At a VM's first boot Ubuntu's apt-daily / apt-daily-upgrade (unattended
upgrades) hold the dpkg lock, for minutes; ansible.builtin.apt waits only 60 s
by default (`lock_timeout`) and then fails the provisioning.  Every apt task
in the roles sets `lock_timeout` from a role variable whose default is at
least 300 s (documented in the role's argument_specs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible_tasks import ROOT, Task, all_tasks

pytestmark = pytest.mark.static

MIN_SECONDS = 300
APT = [t for t in all_tasks() if t.role and t.action in ("ansible.builtin.apt", "apt")]


def _role_file(role: str, *parts: str) -> dict[str, object]:
    path = Path(ROOT, "roles", role, *parts)
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def test_the_first_apt_task_of_a_node_is_found() -> None:
    assert any(t.where == "roles/k8s_prereqs/tasks/Debian.yml" for t in APT)


@pytest.mark.parametrize("task", APT, ids=lambda t: f"{t.where}:{t.name}")
def test_an_apt_task_waits_for_the_dpkg_lock(task: Task) -> None:
    assert task.role is not None
    value = task.args.get("lock_timeout")
    assert value is not None, f"{task.where}: {task.name!r} has no lock_timeout (apt's default is 60 s)"
    m = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", str(value))
    assert m, f"{task.where}: lock_timeout should be a role variable, not {value!r}"
    variable = m.group(1)
    assert variable.startswith(task.role + "_"), f"{variable} is not prefixed with the role's name"
    default = _role_file(task.role, "defaults", "main.yml").get(variable)
    assert isinstance(default, int), f"roles/{task.role}/defaults/main.yml: no integer {variable}"
    assert default >= MIN_SECONDS
    specs = _role_file(task.role, "meta", "argument_specs.yml").get("argument_specs") or {}
    assert isinstance(specs, dict)
    documented = [e for e in specs.values() if variable in (e.get("options") or {})]
    assert documented, f"roles/{task.role}/meta/argument_specs.yml does not document {variable}"
    assert all(e["options"][variable].get("type") == "int" for e in documented)
