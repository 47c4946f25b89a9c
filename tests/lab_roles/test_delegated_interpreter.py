"""Tasks delegated to the Ansible host bring their own Python.

A play that sets `ansible_python_interpreter` (e.g. to the controller's venv,
cluster_k8s_python) passes it to every task of the play, also to a task with
`delegate_to: localhost`, which then fails ("module interpreter ... not found").
Such a task must set `vars: {ansible_python_interpreter: "{{ ansible_playbook_python }}"}`.

A static walk of the playbooks and of the roles, include_role/import_role and
include_tasks/import_tasks they reach: no Ansible run, no hosts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parents[2]
INTERPRETER = "ansible_python_interpreter"
LOCAL = {"localhost", "127.0.0.1", "::1"}
TASK_LISTS = ("pre_tasks", "roles", "tasks", "post_tasks", "handlers")
BLOCK_KEYS = ("block", "rescue", "always")
INCLUDE_ROLE = {
    "include_role",
    "import_role",
    "ansible.builtin.include_role",
    "ansible.builtin.import_role",
}
INCLUDE_TASKS = {
    "include_tasks",
    "import_tasks",
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
}


@dataclass(frozen=True)
class Finding:
    where: str
    task: str
    interpreter: str

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.task!r} runs on localhost with the play's"
            f" {INTERPRETER}={self.interpreter!r}"
        )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _interpreter(node: dict[str, Any], inherited: str | None) -> str | None:
    own = (node.get("vars") or {}).get(INTERPRETER)
    return str(own) if own is not None else inherited


def _runs_on_the_ansible_python(interpreter: str | None) -> bool:
    return interpreter is None or "ansible_playbook_python" in interpreter


class Walker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.findings: list[Finding] = []
        self.seen: set[tuple[Path, str | None]] = set()

    def role(self, name: str, tasks_from: str, interpreter: str | None) -> None:
        role_dir = self.root / "roles" / name
        if not role_dir.is_dir():
            return  # a collection's role: not ours
        meta = _load(role_dir / "meta" / "main.yml") or {}
        for dep in meta.get("dependencies") or []:
            dep_name = dep if isinstance(dep, str) else dep.get("role") or dep.get("name")
            dep_interp = interpreter if isinstance(dep, str) else _interpreter(dep, interpreter)
            self.role(str(dep_name), "main", dep_interp)
        base = tasks_from.removesuffix(".yml").removesuffix(".yaml")
        self.tasks_file(role_dir / "tasks" / f"{base}.yml", interpreter)

    def tasks_file(self, path: Path, interpreter: str | None) -> None:
        key = (path.resolve(), interpreter)
        if key in self.seen or not path.is_file():
            return
        self.seen.add(key)
        self.tasks(_load(path) or [], path, interpreter)

    def tasks(self, tasks: list[Any], path: Path, interpreter: str | None) -> None:
        for task in tasks:
            if isinstance(task, dict):
                self.task(task, path, interpreter)

    def task(self, task: dict[str, Any], path: Path, inherited: str | None) -> None:
        interpreter = _interpreter(task, inherited)
        if any(k in task for k in BLOCK_KEYS):
            for k in BLOCK_KEYS:
                self.tasks(task.get(k) or [], path, interpreter)
            return
        if str(task.get("delegate_to", "")).strip() in LOCAL and not _runs_on_the_ansible_python(interpreter):
            where = str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)
            self.findings.append(Finding(where, str(task.get("name", "?")), str(interpreter)))
        for k in INCLUDE_ROLE & task.keys():
            args = task[k] or {}
            self.role(str(args.get("name")), str(args.get("tasks_from", "main")), interpreter)
        for k in INCLUDE_TASKS & task.keys():
            target = task[k]
            target = target.get("file") if isinstance(target, dict) else target
            if isinstance(target, str) and "{{" not in target:
                self.tasks_file(path.parent / target, interpreter)

    def playbook(self, path: Path) -> None:
        for play in _load(path) or []:
            if not isinstance(play, dict) or "hosts" not in play:
                continue
            interpreter = _interpreter(play, None)
            for section in TASK_LISTS:
                for entry in play.get(section) or []:
                    if section == "roles":
                        name = entry if isinstance(entry, str) else entry.get("role") or entry.get("name")
                        role_interp = (
                            interpreter if isinstance(entry, str) else _interpreter(entry, interpreter)
                        )
                        self.role(str(name), "main", role_interp)
                    elif isinstance(entry, dict):
                        self.task(entry, path, interpreter)


def _playbooks(root: Path) -> Iterator[Path]:
    yield from sorted((root / "playbooks").glob("*.yml"))
    yield from sorted(p for p in root.glob("*.yml") if isinstance(_load(p), list))


def findings(root: Path) -> list[Finding]:
    walker = Walker(root)
    for playbook in _playbooks(root):
        walker.playbook(playbook)
    return walker.findings


def test_tasks_delegated_to_localhost_use_the_ansible_python() -> None:
    found = findings(ROOT)
    assert not found, "\n".join(map(str, found))


def test_the_walk_reaches_the_delegated_tasks() -> None:
    """The walk follows plays into roles and includes: it sees the delegated tasks of the
    plays that set the controller's interpreter (else the check above proves nothing)."""
    walker = Walker(ROOT)
    for playbook in _playbooks(ROOT):
        walker.playbook(playbook)
    reached = {
        path for path, interpreter in walker.seen if interpreter and "cluster_k8s_python" in interpreter
    }
    for rel in ("roles/monitoring/tasks/password.yml", "roles/canarylab_app/tasks/main.yml"):
        assert (ROOT / rel).resolve() in reached, rel


@pytest.mark.parametrize("rel", ["roles/monitoring/tasks/password.yml", "roles/canarylab_app/tasks/main.yml"])
def test_a_delegated_task_without_its_interpreter_is_found(tmp_path: Path, rel: str) -> None:
    """Remove the fix from one file of a scratch copy: the check reports that file."""
    for part in ("playbooks", "roles"):
        shutil.copytree(ROOT / part, tmp_path / part, symlinks=True)
    broken = tmp_path / rel
    tasks = yaml.safe_load(broken.read_text())

    def strip(items: list[Any]) -> None:
        for task in items:
            for k in BLOCK_KEYS:
                strip(task.get(k) or [])
            if str(task.get("delegate_to", "")) in LOCAL and INTERPRETER in (task.get("vars") or {}):
                del task["vars"][INTERPRETER]
                if not task["vars"]:
                    del task["vars"]

    strip(tasks)
    broken.write_text(yaml.safe_dump(tasks, sort_keys=False))
    found = findings(tmp_path)
    assert found
    assert {f.where for f in found} == {rel}
    assert all("cluster_k8s_python" in f.interpreter for f in found)
