"""Walk the project's Ansible tasks as Ansible itself splits them (for the static tests).

Every task of the playbooks and of the roles' task and handler files, through
blocks (block, rescue, always) and literal include_tasks/import_tasks files,
split into module and arguments by Ansible's own ModuleArgsParser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.mod_args import ModuleArgsParser
from ansible.plugins.loader import init_plugin_loader

ROOT = Path(__file__).resolve().parent.parent
TASK_FILES = sorted(
    [
        *ROOT.glob("playbooks/*.yml"),
        ROOT / "experiment.yml",
        *ROOT.glob("roles/*/tasks/*.yml"),
        *ROOT.glob("roles/*/handlers/*.yml"),
    ]
)
PLAY_TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
BLOCK_LISTS = ("block", "rescue", "always")


@dataclass(frozen=True)
class Task:
    path: Path
    data: dict[str, Any]
    action: str
    args: dict[str, Any]
    # the `when` conditions of the task and of every block around it
    when: tuple[str, ...]

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))

    @property
    def name(self) -> str:
        return str(self.data.get("name", "(unnamed)"))

    @property
    def role(self) -> str | None:
        rel = self.path.relative_to(ROOT).parts
        return rel[1] if rel[0] == "roles" else None


def _conditions(item: dict[str, Any]) -> tuple[str, ...]:
    when = item.get("when")
    if when is None:
        return ()
    return tuple(str(w) for w in (when if isinstance(when, list) else [when]))


def _walk(tasks: list[Any] | None, when: tuple[str, ...]) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        if any(key in task for key in BLOCK_LISTS):
            for key in BLOCK_LISTS:
                yield from _walk(task.get(key), when + _conditions(task))
            continue
        yield task, when + _conditions(task)


def _raw_tasks(path: Path) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    doc = yaml.safe_load(path.read_text()) or []
    if path.parent.name in ("tasks", "handlers") and path.parents[2].name == "roles":
        yield from _walk(doc, ())
        return
    for play in doc:
        if not isinstance(play, dict) or "hosts" not in play:
            continue  # import_playbook entries: those files are walked themselves
        for key in PLAY_TASK_LISTS:
            yield from _walk(play.get(key), ())


def _included_file(action: str, args: dict[str, Any], path: Path) -> Path | None:
    """The literal task file an include_tasks/import_tasks names, if any."""
    if action.rsplit(".", 1)[-1] not in ("include_tasks", "import_tasks"):
        return None
    name = args.get("file") or args.get("_raw_params")
    if not isinstance(name, str) or "{{" in name:
        return None  # templated: every file of roles/*/tasks is walked anyway
    for base in (path.parent, path.parent.parent / "tasks"):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    return None


@cache
def all_tasks() -> tuple[Task, ...]:
    """Every task, once per session (the plugin loader is initialised once)."""
    init_plugin_loader()
    out: list[Task] = []
    queue = list(TASK_FILES)
    seen: set[Path] = set()
    while queue:
        path = queue.pop(0).resolve()
        if path in seen:
            continue
        seen.add(path)
        for data, when in _raw_tasks(path):
            action, args, _ = ModuleArgsParser(dict(data)).parse()
            args = args if isinstance(args, dict) else {}
            included = _included_file(action, args, path)
            if included is not None:
                queue.append(included)
            out.append(Task(path=path, data=data, action=action, args=args, when=when))
    return tuple(out)


def json_playbook_env(tmp: Path) -> dict[str, str]:
    """The environment of an ansible-playbook run whose result a test parses: the project's
    config and roles, the json stdout callback, no colour, temp and log files under ``tmp``."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "ANSIBLE_LOG_PATH": str(tmp / "ansible.log"),
    }
