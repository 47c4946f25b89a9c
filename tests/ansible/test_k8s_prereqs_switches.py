"""A boolean role switch given on the command line, as a user types it.

`-e k8s_prereqs_modules_load=false` passes the string "false", which is true
in a bare `when:` (argument_specs validation checks it but does not convert
it), so the modules were loaded anyway.  The role's conditions apply `| bool`.
Run in check mode against this machine: nothing is written, nothing loaded.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.integration

TASK = "Load the modules now"


def _task_results(output: str, name: str) -> list[dict[str, object]]:
    doc = json.loads(output[output.find("{") :])
    return [
        host
        for play in doc["plays"]
        for task in play["tasks"]
        if task["task"]["name"].endswith(name)
        for host in task["hosts"].values()
    ]


@pytest.mark.parametrize("value", ["false", "False", "no", "0"])
def test_a_false_switch_on_the_command_line_skips_the_task(run_playbook, value):
    run = run_playbook(
        "k8s_prereqs_modules.yml",
        {"k8s_prereqs_modules": ["overlay"]},
        ["--check", "-e", f"k8s_prereqs_modules_load={value}"],
    )
    assert run.rc == 0, run.tail()
    results = _task_results(run.output, TASK)
    assert results, run.tail()
    assert all(r.get("skipped") for r in results), results


def test_a_true_switch_on_the_command_line_runs_the_task(run_playbook):
    """The control: the same run with `true` does reach the task."""
    run = run_playbook(
        "k8s_prereqs_modules.yml",
        {"k8s_prereqs_modules": ["overlay"]},
        ["--check", "-e", "k8s_prereqs_modules_load=true"],
    )
    results = _task_results(run.output, TASK)
    assert results, run.tail()
    assert not any(r.get("skipped") for r in results), results
    assert re.search(r"modprobe|overlay", json.dumps(results))
