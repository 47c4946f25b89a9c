"""Every `when:` that tests a boolean role variable applies `| bool`.

A switch given on the command line (`-e k8s_prereqs_modules_load=false`)
arrives as the string "false"; argument_specs validation checks the type but
does not convert it, and a bare `when: k8s_prereqs_modules_load` then fails
(ansible-core 2.19: "Conditionals must have a boolean result") or, on older
cores, counts "false" as true.  tests/ansible/test_k8s_prereqs_switches.py runs it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible_tasks import ROOT, all_tasks

pytestmark = pytest.mark.static


def _bool_options() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        specs = (yaml.safe_load(path.read_text()) or {}).get("argument_specs") or {}
        for entry in specs.values():
            for name, spec in (entry.get("options") or {}).items():
                if (spec or {}).get("type") == "bool":
                    names.add(name)
    return names


BOOLS = _bool_options()
CONDITIONS = sorted(
    {(t.where, c) for t in all_tasks() for c in t.when if any(re.search(rf"\b{b}\b", c) for b in BOOLS)}
)


def unfiltered(condition: str) -> list[str]:
    """The boolean options the condition uses without `| bool` right after them."""
    return [
        b
        for b in sorted(BOOLS)
        for m in re.finditer(rf"\b{b}\b", condition)
        if not re.match(r"\s*\|\s*bool\b", condition[m.end() :])
    ]


def test_the_boolean_options_and_their_conditions_are_found() -> None:
    assert {"k8s_prereqs_modules_load", "kubernetes_packages_install"} <= BOOLS
    assert any("k8s_prereqs_modules_load" in c for _, c in CONDITIONS)


def test_the_check_tells_a_bare_switch_from_a_filtered_one() -> None:
    assert unfiltered("k8s_prereqs_modules_load") == ["k8s_prereqs_modules_load"]
    assert unfiltered("not k8s_prereqs_swap_off and x") == ["k8s_prereqs_swap_off"]
    assert unfiltered("k8s_prereqs_modules_load | bool") == []
    assert unfiltered("not (k8s_prereqs_swap_off|bool)") == []


@pytest.mark.parametrize(("where", "condition"), CONDITIONS, ids=[f"{w}:{c}" for w, c in CONDITIONS])
def test_a_boolean_switch_is_filtered_through_bool(where: str, condition: str) -> None:
    bare = unfiltered(condition)
    assert not bare, f"{where}: `when: {condition}` uses {bare} without `| bool`"


def test_every_role_condition_is_walked() -> None:
    walked = {Path(w).parts[1] for w, _ in CONDITIONS if w.startswith("roles/")}
    assert {"k8s_prereqs", "kubernetes_packages"} <= walked
