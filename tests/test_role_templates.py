"""Every template a role hands to a module, rendered as that module renders it.

- `kubernetes.core.k8s`'s `template:` option is rendered by the collection's
  action plugin with the task's variables only: no `ansible_managed`,
  `template_path` etc. (that is what broke flannel's first apply).
- `ansible.builtin.template` and the `template` lookup add Ansible's template
  variables (`ansible_managed` among them).

The variables are those the role would have: `inventory/group_vars/all/*.yml`,
the role's defaults and vars, the task's vars, a stand-in host (facts,
inventory names) and stand-ins for what the role's own set_fact tasks compute
from the host's state.  Ansible's own Templar renders; it raises on any undefined
variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible._internal._templating._template_vars import generate_ansible_template_vars
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_tasks import ROOT, Task, all_tasks

pytestmark = pytest.mark.static

K8S = {"kubernetes.core.k8s", "k8s"}
TEMPLATE = {"ansible.builtin.template", "template"}
LOOKUP = re.compile(r"lookup\(\s*['\"](?:ansible\.builtin\.)?template['\"]\s*,\s*['\"]([^'\"]+)['\"]")
HOST = "controller-1"
# Values of facts that a role sets from the host's state, where the template branches on them.
SET_FACT_STAND_INS: dict[str, tuple[Any, ...]] = {"containerd_config_version": (2, 3)}


@dataclass(frozen=True)
class Rendering:
    task: Task
    template: Path
    # whether Ansible adds its template variables (ansible_managed, template_path, ...)
    template_vars: bool
    facts: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        facts = "".join(f" {k}={v}" for k, v in self.facts if k in SET_FACT_STAND_INS)
        return f"{self.task.role}:{self.template.name} ({self.task.action}){facts}"


def _k8s_templates(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(i["path"] if isinstance(i, dict) else i) for i in items]


def _fact_sets(tasks: list[Task], role: str) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of stand-ins for the facts the role's set_fact tasks set."""
    names = sorted(
        {
            k
            for t in tasks
            if t.role == role and t.action.endswith("set_fact")
            for k in t.args
            if k != "cacheable"
        }
    )
    combos: list[tuple[tuple[str, Any], ...]] = [()]
    for name in names:
        values = SET_FACT_STAND_INS.get(name, ("stand-in",))
        combos = [(*c, (name, v)) for c in combos for v in values]
    return combos


def _renderings() -> list[Rendering]:
    tasks = all_tasks()
    out: list[Rendering] = []
    for task in tasks:
        if task.role is None:
            continue
        templates = ROOT / "roles" / task.role / "templates"
        found: list[tuple[str, bool]] = []
        if task.action in K8S and "template" in task.args:
            found += [(n, False) for n in _k8s_templates(task.args["template"])]
        if task.action in TEMPLATE:
            found.append((str(task.args["src"]), True))
        found += [(n, True) for n in LOOKUP.findall(str(task.args))]
        for name, template_vars in found:
            out += [Rendering(task, templates / name, template_vars, f) for f in _fact_sets(tasks, task.role)]
    return out


RENDERINGS = _renderings()


def _stand_in_host() -> dict[str, Any]:
    """What facts and inventory give a host of the lab (values are only plausible)."""
    return {
        "inventory_hostname": HOST,
        "inventory_hostname_short": HOST,
        "ansible_facts": {
            "architecture": "x86_64",
            "default_ipv4": {"address": "192.168.56.10", "interface": "eth1"},
            "os_family": "Debian",
            "distribution_release": "bookworm",
            "system": "Linux",
        },
        "groups": {"all": [HOST, "worker-1"], "controller": [HOST], "k8s_cluster": [HOST, "worker-1"]},
        "hostvars": {
            HOST: {
                "cluster_node_ip": "192.168.56.10",
                "cluster_loadbalancer_range": "192.168.56.200-192.168.56.220",
            },
            "worker-1": {"cluster_node_ip": "192.168.56.11"},
        },
        "ansible_config_file": str(ROOT / "ansible.cfg"),
        "playbook_dir": str(ROOT / "playbooks"),
        "ansible_user": "vagrant",
    }


def _role_variables(loader: DataLoader, role: str) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for path in sorted((ROOT / "inventory" / "group_vars" / "all").glob("*.yml")):
        variables.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
    variables.update(_stand_in_host())
    # role defaults lose to inventory variables; role vars win over them
    defaults = ROOT / "roles" / role / "defaults" / "main.yml"
    role_defaults = (
        loader.load_from_file(str(defaults), trusted_as_template=True) if defaults.is_file() else {}
    )
    variables = {**(role_defaults or {}), **variables}
    role_vars = ROOT / "roles" / role / "vars" / "main.yml"
    if role_vars.is_file():
        variables.update(loader.load_from_file(str(role_vars), trusted_as_template=True) or {})
    return variables


def _trusted(value: Any) -> Any:
    """Task vars as Ansible holds them: strings are templates."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def render(rendering: Rendering) -> str:
    loader = DataLoader()
    task = rendering.task
    assert task.role is not None
    variables = _role_variables(loader, task.role)
    variables.update(rendering.facts)
    variables.update(_trusted(task.data.get("vars") or {}))
    if rendering.template_vars:
        variables.update(
            generate_ansible_template_vars(
                path=rendering.template.name,
                fullpath=str(rendering.template),
                dest_path=None,
                include_ansible_managed=True,
            )
        )
    templar = Templar(loader=loader, variables=variables)
    return str(
        templar.template(
            trust_as_template(rendering.template.read_text()),
            preserve_trailing_newlines=True,
            escape_backslashes=False,
        )
    )


def test_the_templates_handed_to_modules_are_found() -> None:
    found = {r.template.relative_to(ROOT).as_posix() for r in RENDERINGS}
    assert "roles/flannel/templates/kube-flannel.yml.j2" in found
    assert "roles/metallb/templates/pool.yml.j2" in found
    assert "roles/containerd/templates/config.toml.j2" in found
    assert "roles/monitoring/templates/values.yml.j2" in found


def test_an_undefined_variable_fails_the_rendering(tmp_path: Path) -> None:
    """The check itself: k8s's templating has no ansible_managed."""
    flannel = next(r for r in RENDERINGS if r.task.role == "flannel")
    broken = tmp_path / "broken.yml.j2"
    broken.write_text("# {{ ansible_managed }}\nkind: ConfigMap\n")
    with pytest.raises(AnsibleError, match="ansible_managed"):
        render(Rendering(flannel.task, broken, template_vars=False))


@pytest.mark.parametrize("rendering", RENDERINGS, ids=lambda r: r.id)
def test_every_template_renders_with_the_roles_variables(rendering: Rendering) -> None:
    assert rendering.template.is_file(), f"{rendering.task.where}: no template {rendering.template}"
    text = render(rendering)
    assert "{{" not in text
    assert text.strip()
    if rendering.task.action in K8S:  # the module reads the result as Kubernetes objects
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert docs
        assert all("kind" in d and "apiVersion" in d for d in docs)
