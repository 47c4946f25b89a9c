"""What `canarylab experiment run` prints of the playbook: the tasks that ran, not the skipped ones."""

from __future__ import annotations

import io

from rich.console import Console

from canarylab.commands.experiment import _ansible_printer


def _event(kind: str, task: str, **res: object) -> dict[str, object]:
    return {"event": kind, "event_data": {"task": task, "res": res}}


def test_only_tasks_that_ran_are_printed_with_their_outcome() -> None:
    out = io.StringIO()
    printer = _ansible_printer(Console(file=out, width=200))
    printer({"event": "playbook_on_task_start", "event_data": {"task": "Read the endpoints"}})
    printer(_event("runner_on_skipped", "Read the endpoints"))
    printer(_event("runner_on_ok", "Install bombardier"))
    printer(_event("runner_on_ok", "Run the experiment engine", changed=True))
    printer(_event("runner_on_failed", "Show the verdict"))
    lines = out.getvalue().splitlines()
    assert lines == [
        "  ansible: Install bombardier (ok)",
        "  ansible: Run the experiment engine (changed)",
        "  ansible: Show the verdict (failed)",
    ]
