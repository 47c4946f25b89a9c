"""Every module call's arguments against the module's own documented options.

ansible-lint and `--syntax-check` do not check module arguments, and tests that
run a play often skip the tasks that need a cluster (tag `kubernetes_api`), so
a misspelt argument there (`label_selector` for k8s_info's `label_selectors`)
only shows on a real lab.  This walks every task of the playbooks and roles
(blocks, rescue, always, handlers, included task files), splits it into module
and arguments with Ansible's own parser, resolves the module through Ansible's
plugin loader (builtin and the collections of the installed `ansible`
package), and fails on any argument that is neither an option nor an alias in
the module's documentation (doc fragments included).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from ansible.parsing.mod_args import ModuleArgsParser
from ansible.plugins.loader import fragment_loader, module_loader
from ansible.utils.plugin_docs import get_docstring
from ansible_tasks import all_tasks

pytestmark = pytest.mark.static

# Modules whose arguments are free key=value pairs (any name is accepted).
ANY_ARGS = {"ansible.builtin.set_fact", "ansible.builtin.set_stats"}
# Arguments Ansible's parser adds itself.
PARSER_ARGS = {"_raw_params", "_variable_params"}


@dataclass(frozen=True)
class Call:
    where: str
    task: str
    action: str
    args: tuple[str, ...]
    free_form: bool


CALLS = [Call(t.where, t.name, t.action, tuple(sorted(t.args)), "_raw_params" in t.args) for t in all_tasks()]


@cache
def _options(action: str) -> tuple[str, frozenset[str], bool]:
    """(FQCN, every option name and alias, whether the module takes a free form)."""
    context = module_loader.find_plugin_with_context(action)
    assert context.resolved, f"module {action} is not installed"
    fqcn = context.resolved_fqcn or action
    collection = ".".join(fqcn.split(".")[:2])
    doc, *_ = get_docstring(
        context.plugin_resolved_path, fragment_loader, collection_name=collection, is_module=True
    )
    options: dict[str, Any] = (doc or {}).get("options") or {}
    names = set(options)
    for spec in options.values():
        names.update((spec or {}).get("aliases") or [])
    return fqcn, frozenset(names), "free_form" in options


def test_every_task_file_was_walked() -> None:
    walked = {c.where for c in CALLS}
    assert "playbooks/experiment-lab-preflight.yml" in walked
    assert "roles/k8s_prereqs/handlers/main.yml" in walked
    assert len(CALLS) > 150


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.where}:{c.task}")
def test_module_arguments_are_documented_options(call: Call) -> None:
    fqcn, names, takes_free_form = _options(call.action)
    if fqcn in ANY_ARGS:
        return
    unknown = [a for a in call.args if a not in names and a not in PARSER_ARGS]
    assert not unknown, (
        f"{call.where}, task {call.task!r}: {fqcn} has no option {unknown} (its options: {sorted(names)})"
    )
    if call.free_form:
        assert takes_free_form or fqcn.endswith(("include_tasks", "import_tasks", "include_vars", "meta")), (
            f"{call.where}, task {call.task!r}: {fqcn} takes no free-form argument"
        )


def test_the_check_catches_a_misspelt_argument() -> None:
    """The preflight's old call (k8s_info takes `label_selectors`, a list)."""
    task = {"kubernetes.core.k8s_info": {"kind": "Deployment", "label_selector": "app=x"}, "register": "r"}
    action, args, _ = ModuleArgsParser(task).parse()
    _, names, _ = _options(action)
    assert "label_selectors" in names
    assert "label_selector" not in names
    assert "register" not in args
